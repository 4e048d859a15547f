//go:build integration

package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/minio/madmin-go/v3"
)

// TestObjectLock backs up into a bucket with Object Lock and a one-day default retention, in
// each mode: two backups (a change, a deletion, a multipart and a large single-part object)
// succeed and every version they write is locked; with the root credentials no backed-up version
// can be deleted and a PutObject to a backed-up key only adds a version; the source's deletion is
// a delete marker; point-in-time restores from the locked bucket are byte-exact. In GOVERNANCE
// mode a delete with the bypass header succeeds only for a principal allowed
// s3:BypassGovernanceRetention; in COMPLIANCE mode the bypass header changes nothing.
func TestObjectLock(t *testing.T) {
	for _, tc := range []struct {
		mode types.ObjectLockRetentionMode
		// bypassDeletes: a delete with x-amz-bypass-governance-retention by a principal allowed
		// s3:BypassGovernanceRetention removes a locked version.
		bypassDeletes bool
	}{
		{mode: types.ObjectLockRetentionModeCompliance, bypassDeletes: false},
		{mode: types.ObjectLockRetentionModeGovernance, bypassDeletes: true},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			e := newEnv(t, envOptions{
				lock: &types.DefaultRetention{Mode: tc.mode, Days: aws.Int32(1)},
				vars: map[string]string{"MULTIPART_THRESHOLD": "6MiB", "MULTIPART_PART_SIZE": "5MiB"},
			})
			single := make([]byte, 7<<20+321)
			_, _ = rand.Read(single)
			multi := make([]byte, 11<<20+77)
			_, _ = rand.Read(multi)
			state1 := map[string][]byte{
				"a.txt":               []byte("a, first"),
				"b.txt":               []byte("b"),
				"gone.txt":            []byte("deleted before the second backup"),
				"big/single-part.bin": single,
			}
			for k, v := range state1 {
				e.putBytes(e.source, k, v)
			}
			state1["big/multi-part.bin"] = multi
			e.uploadInParts(e.source, "big/multi-part.bin", multi, 5<<20, nil)

			run1 := e.mustBackup(`{}`)
			if run1.Report.Copied != 5 || run1.Report.Failed != 0 {
				t.Fatalf("first backup: %s", run1.ReportJSON)
			}
			e.putBytes(e.source, "a.txt", []byte("a, second"))
			e.del(e.source, "gone.txt")
			run2 := e.mustBackup(`{}`)
			if run2.Report.Copied != 1 || run2.Report.Deleted != 1 || run2.Report.Failed != 0 {
				t.Fatalf("second backup: %s", run2.ReportJSON)
			}
			state2 := map[string][]byte{"a.txt": []byte("a, second"), "b.txt": state1["b.txt"],
				"big/single-part.bin": single, "big/multi-part.bin": multi}

			// Every version bucketvault wrote is locked in the bucket's mode, for about a day.
			before := e.lockedVersions()
			if len(before) != 6 {
				t.Fatalf("backup holds %d versions, want 6 (a.txt twice, b, gone, two big): %v", len(before), before)
			}
			for _, v := range before {
				h, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.backup), Key: aws.String(v.key), VersionId: aws.String(v.id)})
				if err != nil {
					t.Fatal(err)
				}
				if h.ObjectLockMode != types.ObjectLockMode(tc.mode) || !aws.ToTime(h.ObjectLockRetainUntilDate).After(time.Now().Add(12*time.Hour)) {
					t.Errorf("%s version %s: lock %q until %v, want %s for a day", v.key, v.id, h.ObjectLockMode, aws.ToTime(h.ObjectLockRetainUntilDate), tc.mode)
				}
			}
			if vi := e.versions(e.backup)["gone.txt"]; vi == nil || !vi.latestMarker || vi.data != 1 {
				t.Errorf("gone.txt in the backup: %+v, want its version under a delete marker", vi)
			}

			// Root cannot delete a backed-up version, nor can it with the bypass header in
			// COMPLIANCE mode.
			refusals := map[string]int{}
			for _, v := range before {
				code := e.deleteVersion(e.s3, v, false)
				if code == "" {
					t.Fatalf("root deleted locked version %s of %s", v.id, v.key)
				}
				refusals["root DeleteObject?versionId: "+code]++
				if !tc.bypassDeletes {
					code := e.deleteVersion(e.s3, v, true)
					if code == "" {
						t.Fatalf("root deleted compliance-locked version %s of %s with the bypass header", v.id, v.key)
					}
					refusals["root DeleteObject?versionId with x-amz-bypass-governance-retention: "+code]++
				}
			}
			for what, n := range refusals {
				t.Logf("%s: %s (%d versions)", tc.mode, what, n)
			}
			// Overwriting history only adds a version (with the checksum S3 requires on a PutObject
			// into a bucket with a default retention).
			if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.backup), Key: aws.String("a.txt"),
				Body: strings.NewReader("ransom"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
				t.Fatalf("put over a.txt: %v", err)
			}
			after := e.lockedVersions()
			for id, v := range before {
				w, ok := after[id]
				if !ok || sha(w.body) != sha(v.body) {
					t.Errorf("version %s of %s changed or vanished", id, v.key)
				}
			}
			if len(after) != len(before)+1 {
				t.Errorf("after the put the backup holds %d versions, want %d", len(after), len(before)+1)
			}

			// Point-in-time restores from the locked bucket are exact (the put above is later than both).
			for _, c := range []struct {
				at   string
				want map[string][]byte
			}{{run1.Execution.Name, state1}, {run2.Execution.Name, state2}} {
				target := e.newBucket("r" + strings.ToLower(randomHex(2)))
				e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q}`, c.at, target))
				got := e.keys(target)
				if len(got) != len(c.want) {
					t.Errorf("restore at %s: keys %v, want %d", c.at, got, len(c.want))
				}
				for k, body := range c.want {
					if sha(e.get(target, k)) != sha(body) {
						t.Errorf("restore at %s: %s differs from the source as it was", c.at, k)
					}
				}
			}

			if tc.bypassDeletes {
				e.governanceBypass(before)
			}
		})
	}
}

// governanceBypass checks that, in GOVERNANCE mode, a delete with the bypass header is refused
// to a principal that may delete versions but not bypass, and succeeds for one allowed
// s3:BypassGovernanceRetention.
func (e *env) governanceBypass(locked map[string]lockedVersion) {
	e.t.Helper()
	var v lockedVersion
	for _, x := range locked {
		if x.key == "b.txt" {
			v = x
		}
	}
	admin, err := madmin.New(strings.TrimPrefix(e.srv.Endpoint, "http://"), e.srv.AccessKey, e.srv.SecretKey, false)
	if err != nil {
		e.t.Fatal(err)
	}
	actions := []string{"s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObjectRetention"}
	user := func(name string, extra ...string) *s3.Client {
		doc, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{{
			"Effect": "Allow", "Action": append(actions, extra...),
			"Resource": []string{"arn:aws:s3:::" + e.backup, "arn:aws:s3:::" + e.backup + "/*"},
		}}})
		if err != nil {
			e.t.Fatal(err)
		}
		name += "-" + strings.TrimPrefix(e.backup, "bak-")
		secret := randomHex(20)
		if err := admin.AddCannedPolicy(e.ctx, name, doc); err != nil {
			e.t.Fatalf("policy %s: %v", name, err)
		}
		if err := admin.AddUser(e.ctx, name, secret); err != nil {
			e.t.Fatalf("user %s: %v", name, err)
		}
		if _, err := admin.AttachPolicy(e.ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: name}); err != nil {
			e.t.Fatalf("attach %s: %v", name, err)
		}
		return userClient(e.t, e.ctx, name, secret)
	}
	plain, bypasser := user("nobypass"), user("bypass", "s3:BypassGovernanceRetention")
	if code := e.deleteVersion(plain, v, false); code == "" {
		e.t.Fatal("a user without s3:BypassGovernanceRetention deleted a governance-locked version")
	}
	code := e.deleteVersion(plain, v, true)
	if code == "" {
		e.t.Fatal("a user without s3:BypassGovernanceRetention deleted a governance-locked version with the bypass header")
	}
	e.t.Logf("GOVERNANCE: user without s3:BypassGovernanceRetention, with bypass header: refused with %s", code)
	if code := e.deleteVersion(bypasser, v, false); code == "" {
		e.t.Fatal("a user allowed s3:BypassGovernanceRetention deleted a governance-locked version without the bypass header")
	}
	if code := e.deleteVersion(bypasser, v, true); code != "" {
		e.t.Fatalf("user allowed s3:BypassGovernanceRetention, with the bypass header: %s", code)
	}
	if _, ok := e.lockedVersions()[v.id]; ok {
		e.t.Fatal("the bypassing delete succeeded but the version is still there")
	}
}

type lockedVersion struct {
	key, id string
	body    []byte
}

// lockedVersions reads every object version (not delete markers) of the backup, by version ID.
func (e *env) lockedVersions() map[string]lockedVersion {
	e.t.Helper()
	m := map[string]lockedVersion{}
	p := s3.NewListObjectVersionsPaginator(e.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(e.backup)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, v := range page.Versions {
			out, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(e.backup), Key: v.Key, VersionId: v.VersionId})
			if err != nil {
				e.t.Fatal(err)
			}
			var b bytes.Buffer
			_, err = b.ReadFrom(out.Body)
			out.Body.Close()
			if err != nil {
				e.t.Fatal(err)
			}
			m[aws.ToString(v.VersionId)] = lockedVersion{key: aws.ToString(v.Key), id: aws.ToString(v.VersionId), body: b.Bytes()}
		}
	}
	return m
}

// deleteVersion deletes one version through client (with the governance bypass header when
// bypass) and returns the error code of a refusal, "" when the delete succeeded.
func (e *env) deleteVersion(client *s3.Client, v lockedVersion, bypass bool) string {
	e.t.Helper()
	in := &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String(v.key), VersionId: aws.String(v.id)}
	if bypass {
		in.BypassGovernanceRetention = aws.Bool(true)
	}
	_, err := client.DeleteObject(e.ctx, in)
	if err == nil {
		return ""
	}
	var api smithy.APIError
	if !errors.As(err, &api) || (api.ErrorCode() != "AccessDenied" && api.ErrorCode() != "InvalidRequest") {
		e.t.Fatalf("delete %s version %s: %v, want a refusal (AccessDenied or InvalidRequest)", v.key, v.id, err)
	}
	return api.ErrorCode() + ": " + api.ErrorMessage()
}
