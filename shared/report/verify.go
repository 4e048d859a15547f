package report

// Verify is a verify run's own part of its report (a restore drill, package shared/verify): what
// it sampled, how each object was checked, and every mismatch. report.json holds every mismatch;
// the execution output the first DefaultOutputMismatches (MismatchesOmitted counts the rest).
type Verify struct {
	// AgainstBackup is the last successful backup the drill checked against ("" when none was
	// found), with its start and finish.
	AgainstBackup         string `json:"againstBackup"`
	AgainstBackupStarted  string `json:"againstBackupStartedAt"`
	AgainstBackupFinished string `json:"againstBackupFinishedAt"`
	// Sample is the rule the random sample followed: "100" (a count), "5%" (a share) or "all";
	// Seed is the random seed (the same seed over the same listing picks the same keys).
	Sample string `json:"sample"`
	Seed   int64  `json:"seed"`
	// BackupObjects counts the backup's current objects listed; Sampled those picked at random;
	// LastCopied the objects the last backup copied (each checked, whether picked or not);
	// LastCopiedUnknown is set when that backup's batches are gone (they expire after
	// runResultsExpiryDays), so its copied objects could not be checked one by one.
	BackupObjects     int64 `json:"backupObjects"`
	Sampled           int64 `json:"sampled"`
	LastCopied        int64 `json:"lastCopied"`
	LastCopiedUnknown bool  `json:"lastCopiedUnknown"`
	// Checked = Sampled + LastCopied. Of them: Verified had identical content in the source and
	// the backup (ByChecksum by S3's additional checksum of both sides, ByHash by SHA-256 of both
	// bodies), ChangedSince were changed or deleted in the source since the backup's version was
	// written (not a mismatch), Archived are in GLACIER or DEEP_ARCHIVE and were not read,
	// NotInBackup were copied by the last backup but have no current version now (deleted since).
	Checked       int64 `json:"checked"`
	Verified      int64 `json:"verified"`
	BytesVerified int64 `json:"bytesVerified"`
	ByChecksum    int64 `json:"byChecksum"`
	ByHash        int64 `json:"byHash"`
	BytesHashed   int64 `json:"bytesHashed"` // bytes read to hash, both sides together
	ChangedSince  int64 `json:"changedSince"`
	Archived      int64 `json:"archived"`
	NotInBackup   int64 `json:"notInBackup"`
	// VersionsChecked counts the last backup's copies looked for among the backup's versions:
	// VersionsByETag found by the ETag and size its batch recorded (no version id is recorded),
	// VersionsByTime found only as a version written during that backup (the source changed
	// while it ran, or SSE-KMS gave it another ETag), MissingVersions not found at all.
	VersionsChecked int64 `json:"versionsChecked"`
	VersionsByETag  int64 `json:"versionsByETag"`
	VersionsByTime  int64 `json:"versionsByTime"`
	MissingVersions int64 `json:"missingVersions"`
	// ContentMismatches counts objects whose content or size differ; ReadErrors objects that
	// could not be read. Each, and each missing version, is in Mismatches.
	ContentMismatches  int64      `json:"contentMismatches"`
	ReadErrors         int64      `json:"readErrors"`
	Mismatches         []Mismatch `json:"mismatches"`
	MismatchesOmitted  int64      `json:"mismatchesOmitted"`
	Invocations        int        `json:"invocations"`
	ChecksumAlgorithms []string   `json:"checksumAlgorithms"` // the algorithms ByChecksum compared
	// Restore is the restore sample's part: a smaller sample restored through the restore state
	// machine into a scratch location and compared with the source; nil when none was drawn.
	Restore *VerifyRestore `json:"restore,omitempty"`
}

// VerifyRestore is a drill's restore sample: drawn from the objects the drill verified (and the
// archived ones it met), restored through the restore state machine into Target, each restored
// copy compared with the source (bytes by SHA-256, user metadata, content headers, tags), timed,
// and the scratch copies deleted.
type VerifyRestore struct {
	// Requested is the sample size asked for (restoreSample); Sampled how many were drawn (fewer
	// when fewer objects were verified). Archived counts the archived versions among them: with
	// Thaw they were restored (thawed first, at ThawEstimate's cost), without it skipped.
	Requested int64         `json:"requested"`
	Sampled   int64         `json:"sampled"`
	Archived  int64         `json:"archived"`
	Thaw      bool          `json:"thaw"`
	ThawCost  *ThawEstimate `json:"thawEstimate,omitempty"`
	// Execution is the restore execution the drill started; Status its status (SUCCEEDED,
	// FAILED, ...), Error and Cause its error when it did not succeed. Target is the scratch
	// location (s3://bucket/prefix).
	Execution string `json:"execution"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	Cause     string `json:"cause,omitempty"`
	Target    string `json:"target"`
	// Restored counts the objects sent to the restore; Compared those compared with the source;
	// Identical those whose bytes, metadata, content headers and tags all equal the source's;
	// ChangedSince those the source changed since (not compared); Mismatches those that differ or
	// were not restored (each in Verify.Mismatches, kind restore-*).
	Restored     int64 `json:"restored"`
	Compared     int64 `json:"compared"`
	Identical    int64 `json:"identical"`
	ChangedSince int64 `json:"changedSince"`
	Mismatches   int64 `json:"mismatches"`
	Bytes        int64 `json:"bytes"`
	// Seconds is the restore execution's duration (its start to its stop), SecondsPerObject and
	// SecondsPerGB that time over the objects restored and their bytes (GB = 10^9 bytes; 0 when
	// nothing was restored).
	Seconds          float64 `json:"seconds"`
	SecondsPerObject float64 `json:"secondsPerObject"`
	SecondsPerGB     float64 `json:"secondsPerGB"`
	// ScratchDeleted counts the object versions deleted from the scratch location afterwards;
	// ScratchLeft those still there after the clean-up (0 unless a delete was refused).
	ScratchDeleted int64 `json:"scratchDeleted"`
	ScratchLeft    int64 `json:"scratchLeft"`
}

// ThawEstimate is what thawing the restore sample's archived versions costs at list prices
// (Standard retrieval tier): per GB retrieved and per 1,000 requests, and the documented wait.
type ThawEstimate struct {
	Objects  int64   `json:"objects"`
	Bytes    int64   `json:"bytes"`
	Tier     string  `json:"tier"`
	USD      float64 `json:"usd"`
	WaitTime string  `json:"waitTime"` // the tier's documented retrieval time for the slowest class
}

// Kinds of Mismatch.
const (
	MismatchContent        = "content"         // both sides read, hashes differ
	MismatchSize           = "size"            // sizes differ (the source unchanged since)
	MismatchMissingVersion = "missing-version" // the version the last backup wrote is gone
	MismatchReadError      = "read-error"      // a side could not be read
	// The restore sample's kinds: the restored copy's bytes, user metadata, a content header
	// or the tags differ from the source's, or the object was not restored at all.
	MismatchRestoredContent  = "restore-content"
	MismatchRestoredMetadata = "restore-metadata"
	MismatchRestoredTags     = "restore-tags"
	MismatchNotRestored      = "restore-missing"
)

// Mismatch names one object whose backup does not hold what it should, with the evidence of
// both sides: hashes (hex SHA-256 of the bodies), checksums (algorithm:base64 value), ETags,
// sizes and versions, as far as they were read.
type Mismatch struct {
	Key             string `json:"key"`
	Kind            string `json:"kind"`
	Detail          string `json:"detail"`
	SourceSHA256    string `json:"sourceSha256,omitempty"`
	BackupSHA256    string `json:"backupSha256,omitempty"`
	SourceChecksum  string `json:"sourceChecksum,omitempty"`
	BackupChecksum  string `json:"backupChecksum,omitempty"`
	SourceETag      string `json:"sourceETag,omitempty"`
	BackupETag      string `json:"backupETag,omitempty"`
	SourceSize      int64  `json:"sourceSize"`
	BackupSize      int64  `json:"backupSize"`
	BackupVersionID string `json:"backupVersionId,omitempty"`
	// ExpectedETag and ExpectedSize are what the last backup's batch recorded (missing-version).
	ExpectedETag string `json:"expectedETag,omitempty"`
	ExpectedSize int64  `json:"expectedSize,omitempty"`
	// The restore sample's evidence: the restored copy's SHA-256, and for a metadata or tag
	// mismatch the field (a header name, "x-amz-meta-<name>" or "tag <name>") with both values.
	RestoredSHA256 string `json:"restoredSha256,omitempty"`
	Field          string `json:"field,omitempty"`
	SourceValue    string `json:"sourceValue,omitempty"`
	RestoredValue  string `json:"restoredValue,omitempty"`
}

// DefaultOutputMismatches is how many mismatches the execution output carries.
const DefaultOutputMismatches = 50

// Short is v cut for the execution output: the first DefaultOutputMismatches mismatches.
func (v *Verify) Short() *Verify {
	if v == nil || len(v.Mismatches) <= DefaultOutputMismatches {
		return v
	}
	s := *v
	s.Mismatches = v.Mismatches[:DefaultOutputMismatches]
	s.MismatchesOmitted += int64(len(v.Mismatches) - DefaultOutputMismatches)
	return &s
}
