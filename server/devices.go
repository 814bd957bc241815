package server

import (
	"cmp"
	"slices"
	"time"

	"github.com/mqtter/mqtter/server/store"
)

// peerRecent is how long a device without addresses stays in peers
// answers after it was last seen.
const peerRecent = 30 * 24 * time.Hour

// deviceLimit is the store's device limit for this server: MaxDevices per
// account, retiring only devices that are not connected.
func (s *Server) deviceLimit() store.DeviceLimit {
	return store.DeviceLimit{
		Max: s.cfg.MaxDevices,
		Connected: func(device string) bool {
			_, ok := s.sessions.device(device)
			return ok
		},
		Retired: s.deviceRetired,
	}
}

// deviceRetired forgets a retired device: its id may be bound again, to
// any account, so the owner cache must not answer for it.
func (s *Server) deviceRetired(device string) {
	s.owners.forget(device)
	s.metrics.devicesRetired.Inc()
	s.log.Info("stale device retired", "device", device)
}

// peerDevices picks the devices of one account that a peers answer lists:
// those connected, with addresses, or seen within peerRecent; connected
// ones first, then the most recently seen; at most MaxDevices.
func (s *Server) peerDevices(devices []store.Device, now time.Time) []store.Device {
	connected := func(d store.Device) bool {
		sess, ok := s.sessions.device(d.ID)
		return ok && !sess.cl.Closed()
	}
	recent := now.Add(-peerRecent).UnixMilli()
	out := slices.DeleteFunc(slices.Clone(devices), func(d store.Device) bool {
		return !connected(d) && len(d.Addrs) == 0 && d.LastSeen < recent
	})
	slices.SortStableFunc(out, func(a, b store.Device) int {
		ca, cb := connected(a), connected(b)
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.LastSeen, a.LastSeen)
	})
	if len(out) > s.cfg.MaxDevices {
		out = out[:s.cfg.MaxDevices]
	}
	return out
}
