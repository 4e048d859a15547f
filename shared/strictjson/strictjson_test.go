package strictjson

import "testing"

func TestUnmarshal(t *testing.T) {
	type T struct {
		A int `json:"a"`
	}
	tests := []struct {
		name, in string
		want     int
		wantErr  bool
	}{
		{"known field", `{"a": 3}`, 3, false},
		{"empty object", `{}`, 0, false},
		{"unknown field", `{"a": 1, "b": 2}`, 0, true},
		{"renamed field", `{"A_": 1}`, 0, true},
		{"wrong type", `{"a": "x"}`, 0, true},
		{"trailing value", `{"a": 1} {"a": 2}`, 0, true},
		{"trailing garbage", `{"a": 1} x`, 0, true},
		{"trailing space", "{\"a\": 1}\n ", 1, false},
		{"empty", ``, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v T
			err := Unmarshal([]byte(tt.in), &v)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && v.A != tt.want {
				t.Errorf("a = %d, want %d", v.A, tt.want)
			}
		})
	}
}
