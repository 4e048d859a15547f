package copier

import (
	"context"
	"fmt"
	"slices"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// route is how a batch's objects travel: the client that writes the destination, and the
// client that reads the source when it is not that one (nil: the destination's client reads it
// too, and copies are server-side). serverSide says the source, read through its own client,
// is the same provider's in another Region: copies stay server-side. Otherwise it is another
// provider's, and copies are streamed.
type route struct {
	dest       S3
	source     S3
	serverSide bool
}

// route checks that the copier may run a batch between its header's buckets, and returns how:
// a backup (source → the backup bucket or a further destination) or a restore (the backup
// bucket or a further destination → a configured restore target).
func (h *Handler) route(ctx context.Context, hd batch.Header) (route, error) {
	refuse := func() error {
		return fmt.Errorf("it copies %s → %s (destination %q, source %q); this copier may copy only %s → %s or a further destination %v, or from one of them to one of the restore targets %v",
			hd.Source, hd.Destination, hd.DestinationName, hd.SourceName, h.Config.SourceBucket, h.Config.BackupBucket, h.Config.Destinations, h.Config.RestoreTargets)
	}
	// side is the client of one end, and whether it is another provider's.
	side := func(name string) (S3, bool, error) {
		if name == "" {
			return h.S3, false, nil
		}
		d, ok := destination.Find(h.Config.Destinations, name)
		if !ok {
			return nil, false, refuse()
		}
		clients, err := h.destinationClients(ctx)
		if err != nil {
			return nil, false, err
		}
		return clients[name], !d.SameProvider(), nil
	}
	between := func(source, dest S3, other bool) route {
		if source == dest {
			return route{dest: dest}
		}
		return route{dest: dest, source: source, serverSide: !other}
	}
	switch {
	case h.backup(hd):
		dest, other, err := side(hd.DestinationName)
		if err != nil {
			return route{}, err
		}
		return between(h.S3, dest, other), nil
	case hd.DestinationName == "" && slices.Contains(h.Config.RestoreTargets, hd.Destination):
		if hd.SourceName == "" && hd.Source != h.Config.BackupBucket {
			return route{}, refuse()
		}
		if hd.SourceName != "" {
			d, ok := destination.Find(h.Config.Destinations, hd.SourceName)
			if !ok || d.Bucket != hd.Source {
				return route{}, refuse()
			}
		}
		source, other, err := side(hd.SourceName)
		if err != nil {
			return route{}, err
		}
		return between(source, h.S3, other), nil
	}
	return route{}, refuse()
}

// destinationClients returns the further destinations' clients, opening them on first use.
func (h *Handler) destinationClients(ctx context.Context) (map[string]S3, error) {
	h.destMu.Lock()
	defer h.destMu.Unlock()
	if h.Destinations != nil || len(h.Config.Destinations) == 0 {
		return h.Destinations, nil
	}
	m, err := destination.OpenAs(ctx, h.Config.Destinations, h.S3, s3client.Options{MaxConns: max(h.Config.Concurrency, 1) * 2})
	if err != nil {
		return nil, err
	}
	h.Destinations = m
	return m, nil
}
