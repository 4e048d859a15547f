// Package lockcheck refuses Object Lock settings for the backup bucket that S3 would refuse, or
// that it would accept and then not honour: a default retention (mode and period) checked
// against the bucket's lifecycle expiries, before anything is deployed.
package lockcheck

import (
	"errors"
	"fmt"
)

// The retention modes (S3 API reference, DefaultRetention: "Valid Values: GOVERNANCE |
// COMPLIANCE").
const (
	Governance = "GOVERNANCE"
	Compliance = "COMPLIANCE"
)

// The range of a default retention period. The S3 API reference types Days and Years as integers
// and requires one of them, positive; MinIO, the local server, enforces these maxima
// (internal/bucket/object/lock: maximumRetentionDays, maximumRetentionYears).
const (
	MinDays  = 1
	MaxDays  = 36500
	MinYears = 1
	MaxYears = 100
)

// ErrInvalid is what every refusal wraps (errors.Is).
var ErrInvalid = errors.New("invalid Object Lock settings")

// ValidateLock checks a default retention of mode for days against the backup bucket's lifecycle:
// noncurrentExpireDays (days after a version becomes noncurrent) and expireDays (days after
// creation; a current version's expiry in a versioned bucket only adds a delete marker), 0
// meaning no such expiry. Every problem is named in the error, which wraps ErrInvalid.
//
// S3 never deletes a locked version, lifecycle included ("a locked version of an object can't be
// deleted by an S3 Lifecycle expiration policy": S3 User Guide, Object Lock considerations,
// Managing S3 Lifecycle policies with Object Lock). A noncurrent-version expiry shorter than
// the retention is therefore accepted by PutBucketLifecycleConfiguration and then not honoured:
// the versions stay, and are billed, until their retention ends. It is refused here. A
// current-version expiry of any length is allowed: placing a delete marker is not a deletion,
// and Object Lock allows it (same page).
func ValidateLock(mode string, days int, noncurrentExpireDays, expireDays int) error {
	var errs []error
	if days < MinDays || days > MaxDays {
		errs = append(errs, fmt.Errorf("objectLockDays: %d: want %d to %d (%d to %d years)", days, MinDays, MaxDays, MinYears, MaxYears))
	}
	return check(mode, errs, days, fmt.Sprintf("%d days", days), noncurrentExpireDays, expireDays)
}

// ValidateLockYears is ValidateLock for a retention given in years. A noncurrent-version expiry
// must then cover the longest such a period can be, leap days included (MaxDaysIn).
func ValidateLockYears(mode string, years int, noncurrentExpireDays, expireDays int) error {
	var errs []error
	if years < MinYears || years > MaxYears {
		errs = append(errs, fmt.Errorf("objectLockYears: %d: want %d to %d", years, MinYears, MaxYears))
	}
	return check(mode, errs, MaxDaysIn(years), fmt.Sprintf("%d years (up to %d days)", years, MaxDaysIn(years)), noncurrentExpireDays, expireDays)
}

// MaxDaysIn is the most days that years calendar years can span: 365 each, plus a leap day in
// every four consecutive years, at most.
func MaxDaysIn(years int) int {
	if years <= 0 {
		return 0
	}
	return 365*years + (years+3)/4
}

func check(mode string, errs []error, retentionDays int, retention string, noncurrentExpireDays, expireDays int) error {
	switch mode {
	case Governance, Compliance:
	default:
		errs = append(errs, fmt.Errorf("objectLockMode: %q: want %s (principals allowed s3:BypassGovernanceRetention can still delete) or %s (nobody can, the account root included, until the retention ends)", mode, Governance, Compliance))
	}
	if noncurrentExpireDays < 0 {
		errs = append(errs, fmt.Errorf("noncurrentExpireDays: %d: want 0 (no expiry) or more", noncurrentExpireDays))
	}
	if expireDays < 0 {
		errs = append(errs, fmt.Errorf("lifecycleExpireDays: %d: want 0 (no expiry) or more", expireDays))
	}
	if noncurrentExpireDays > 0 && retentionDays > 0 && noncurrentExpireDays < retentionDays {
		errs = append(errs, fmt.Errorf("noncurrentExpireDays: %d is shorter than the Object Lock retention of %s: S3 cannot delete a locked version, so the lifecycle would not honour it and the history would be kept (and billed) until each version's retention ends; set noncurrentExpireDays to at least %d, or shorten the retention",
			noncurrentExpireDays, retention, retentionDays))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}
