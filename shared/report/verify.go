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
}

// Kinds of Mismatch.
const (
	MismatchContent        = "content"         // both sides read, hashes differ
	MismatchSize           = "size"            // sizes differ (the source unchanged since)
	MismatchMissingVersion = "missing-version" // the version the last backup wrote is gone
	MismatchReadError      = "read-error"      // a side could not be read
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
