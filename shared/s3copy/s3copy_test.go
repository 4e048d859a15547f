package s3copy

import "testing"

func TestCopySource(t *testing.T) {
	tests := []struct{ bucket, key, version, want string }{
		{"b", "plain/key.txt", "", "b/plain/key.txt"},
		{"b", "with space+plus%pct", "", "b/with%20space%2Bplus%25pct"},
		{"b", "ü/日本", "", "b/%C3%BC/%E6%97%A5%E6%9C%AC"},
		{"b", "q?h#a&;=", "", "b/q%3Fh%23a%26%3B%3D"},
		{"b", "k", "v/1+2", "b/k?versionId=v%2F1%2B2"},
	}
	for _, tt := range tests {
		if got := CopySource(tt.bucket, tt.key, tt.version); got != tt.want {
			t.Errorf("CopySource(%q, %q, %q) = %s, want %s", tt.bucket, tt.key, tt.version, got, tt.want)
		}
	}
}

func TestEvenParts(t *testing.T) {
	tests := []struct {
		name           string
		size, partSize int64
		wantParts      int
		wantFirst      int64
	}{
		{"empty object", 0, 8 << 20, 1, 0},
		{"exact multiple", 24 << 20, 8 << 20, 3, 8 << 20},
		{"remainder", 25 << 20, 8 << 20, 4, 8 << 20},
		{"part size below S3 minimum is raised", 20 << 20, 1 << 20, 4, MinPartSize},
		{"10,000-part limit raises the part size", 5 << 40, DefaultPartSize, 10000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := evenParts(tt.size, tt.partSize)
			var total int64
			for _, p := range parts {
				total += p
			}
			if total != tt.size || len(parts) > MaxParts {
				t.Fatalf("%d parts totalling %d", len(parts), total)
			}
			if tt.wantParts != 0 && len(parts) > tt.wantParts {
				t.Errorf("%d parts, want at most %d", len(parts), tt.wantParts)
			}
			if tt.wantFirst != 0 && parts[0] != tt.wantFirst {
				t.Errorf("first part %d, want %d", parts[0], tt.wantFirst)
			}
		})
	}
}
