package server

import (
	"strings"
	"testing"
	"time"
)

func TestExpiresAt(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"", 0, ""},
		{"1", now.UnixMilli() + 1000, ""},
		{"86400", now.UnixMilli() + 3600_000, ""}, // cut to the longest, 1 h
		{"9223372036854775807", now.UnixMilli() + 3600_000, ""},
		{"0", 0, "over 0"},
		{"-5", 0, "over 0"},
		{"1.5", 0, "expires_seconds"},
		{"soon", 0, "expires_seconds"},
		{"99999999999999999999", 0, "out of range"},
	} {
		got, err := expiresAt(tc.in, now, time.Hour)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expiresAt(%q) = %d, %v, want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expiresAt(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

// The expires_seconds of a SUBSCRIBE comes from the network: any string
// gives an error or a time within the longest, never a panic.
func FuzzExpiresAt(f *testing.F) {
	for _, s := range []string{"", "1", "60", "0", "-1", "1e3", "soon", "99999999999999999999", " 5"} {
		f.Add(s)
	}
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := expiresAt(v, now, time.Hour)
		switch {
		case err != nil:
			if got != 0 {
				t.Errorf("expiresAt(%q) = %d with error %v", v, got, err)
			}
		case v == "":
			if got != 0 {
				t.Errorf("expiresAt(\"\") = %d, want 0", got)
			}
		case got <= now.UnixMilli() || got > now.Add(time.Hour).UnixMilli():
			t.Errorf("expiresAt(%q) = %d, want within (now, now+1h]", v, got)
		}
	})
}
