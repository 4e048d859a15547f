package listing

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// Histories are gathered whole even when a key's versions span several pages.
func TestVersionsAcrossPages(t *testing.T) {
	for _, page := range []int{1, 2, 3, 1000} {
		t.Run(fmt.Sprint("page ", page), func(t *testing.T) {
			f := s3fake.New()
			f.PageSize = page
			f.AddBucket("b", true)
			for i := range 5 {
				f.Put("b", "a", []byte{byte(i)})
			}
			if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("a")}); err != nil {
				t.Fatal(err)
			}
			f.Put("b", "b", []byte("1"))
			f.Put("b", "c", []byte("1"))
			f.Put("b", "c", []byte("2"))
			for _, after := range []string{"", "a"} {
				v := NewVersions(f, "b", "", after)
				got := map[string]int{}
				var order []string
				for {
					key, h, ok, err := v.Next(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					got[key] = len(h)
					order = append(order, key)
				}
				want := map[string]int{"a": 6, "b": 1, "c": 2}
				wantOrder := []string{"a", "b", "c"}
				if after == "a" {
					delete(want, "a")
					wantOrder = wantOrder[1:]
				}
				if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(order, wantOrder) {
					t.Fatalf("after %q: got %v in order %v, want %v", after, got, order, want)
				}
			}
		})
	}
}

func TestAsOf(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	v := func(id string, at time.Duration, marker bool) Version {
		return Version{Object: change.Object{Key: "k", LastModified: t0.Add(at)}, VersionID: id, DeleteMarker: marker}
	}
	history := []Version{v("v3", 3*time.Hour, false), v("m2", 2*time.Hour, true), v("v1", time.Hour, false)}
	tests := []struct {
		at   time.Duration
		want string
	}{
		{0, ""}, {time.Hour, "v1"}, {90 * time.Minute, "v1"}, {2 * time.Hour, "m2"}, {150 * time.Minute, "m2"}, {5 * time.Hour, "v3"},
	}
	for _, tt := range tests {
		got := AsOf(history, t0.Add(tt.at))
		id := ""
		if got != nil {
			id = got.VersionID
		}
		if id != tt.want {
			t.Errorf("AsOf(+%v) = %q, want %q", tt.at, id, tt.want)
		}
	}
}
