package thing

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// ErrBadRule is wrapped by Rule.Validate's and Rule.Verify's errors.
var ErrBadRule = errors.New("bad rule")

// ruleDomain starts the bytes a rule's signature covers, so it can never be
// taken for a message signature or a device proof.
const ruleDomain = "mqtter/rule/v1\x00"

// Rule says: when thing A reports an event (or a property change) whose
// data meets every condition, thing B runs an action, with an input that
// is fixed or taken from the data. A person bound to both things makes it
// and signs it with a device key; A's node runs it (the server, for an A
// without a node), and B's node checks it (as the command's Grant) on
// every command A sends under it.
type Rule struct {
	ID      string `json:"id"`
	A       string `json:"a"`
	B       string `json:"b"`
	When    When   `json:"when"`
	Then    Then   `json:"then"`
	By      string `json:"by"`      // the person who made it
	Created int64  `json:"created"` // unix ms
	Device  string `json:"device"`  // the device of By that signed it
	Sig     string `json:"sig,omitempty"`
}

// When is a rule's trigger: an event of A by name, or a change of one of
// A's properties, and conditions on the event's data or the property's
// new value, all of which must hold.
type When struct {
	Event    string `json:"event,omitempty"`
	Property string `json:"property,omitempty"`
	If       []Cond `json:"if,omitempty"`
}

// Cond compares the value at Path (dot-separated object members; "" is
// the whole value) with Value. Op is one of eq, ne, gt, ge, lt, le.
type Cond struct {
	Path  string          `json:"path,omitempty"`
	Op    string          `json:"op"`
	Value json.RawMessage `json:"value"`
}

// Then is a rule's effect: B's action, with Input, or with the value at
// InputFrom (a path as in Cond) in the trigger's data when InputFrom is set.
type Then struct {
	Action    string          `json:"action"`
	Input     json.RawMessage `json:"input,omitempty"`
	InputFrom string          `json:"input_from,omitempty"`
}

// MaxConds bounds a rule's conditions.
const MaxConds = 8

var condOps = []string{"eq", "ne", "gt", "ge", "lt", "le"}

// Validate checks the rule's shape (not its signature: Verify does).
func (r *Rule) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRule, fmt.Sprintf(format, args...))
	}
	if !validName(r.ID) {
		return bad("id %.80q is not a name", r.ID)
	}
	if !wire.ValidAccount(r.A) || !wire.ValidAccount(r.B) || !wire.ValidAccount(r.By) {
		return bad("a, b and by must be accounts")
	}
	if r.A == r.B {
		return bad("a thing's rule commands another thing")
	}
	if (r.When.Event == "") == (r.When.Property == "") {
		return bad("when: give an event or a property")
	}
	if name := r.When.Event + r.When.Property; !validName(name) {
		return bad("when: %.80q is not a name", name)
	}
	if len(r.When.If) > MaxConds {
		return bad("more than %d conditions", MaxConds)
	}
	for _, c := range r.When.If {
		if !slices.Contains(condOps, c.Op) {
			return bad("condition op %.20q: want one of %v", c.Op, condOps)
		}
		if !json.Valid(c.Value) {
			return bad("condition value is not JSON")
		}
	}
	if !validName(r.Then.Action) {
		return bad("then: action %.80q is not a name", r.Then.Action)
	}
	if len(r.Then.Input) > 0 && !json.Valid(r.Then.Input) {
		return bad("then: input is not JSON")
	}
	if r.Created <= 0 {
		return bad("no created time")
	}
	return nil
}

// SigningBytes returns what the rule's signature covers: the domain, then
// the rule without Sig as canonical JSON (wire.CanonicalJSON).
func (r *Rule) SigningBytes() ([]byte, error) {
	u := *r
	u.Sig = ""
	b, err := json.Marshal(&u)
	if err != nil {
		return nil, err
	}
	c, err := wire.CanonicalJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRule, err)
	}
	return append([]byte(ruleDomain), c...), nil
}

// Sign sets Device to key's peer id and signs the rule.
func (r *Rule) Sign(key crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("sign rule: %w", err)
	}
	r.Device = id.String()
	b, err := r.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign rule: %w", err)
	}
	sig, err := key.Sign(b)
	if err != nil {
		return fmt.Errorf("sign rule: %w", err)
	}
	r.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Verify checks the rule's shape and that Sig is Device's signature over
// it. Whether Device belongs to By, and By is bound to A and B, is for the
// caller to check against its relation book (Authorize does).
func (r *Rule) Verify() error {
	if err := r.Validate(); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(r.Sig)
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("%w: sig is not a base64 Ed25519 signature", ErrBadRule)
	}
	pub, err := wire.DevicePublicKey(r.Device)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRule, err)
	}
	b, err := r.SigningBytes()
	if err != nil {
		return err
	}
	if ok, err := pub.Verify(b, sig); err != nil || !ok {
		return fmt.Errorf("%w: the signature does not match the rule and device", ErrBadRule)
	}
	return nil
}

// Fires reports whether the rule fires on feedback f of thing A (an event
// or a state report), and with which input for B's action.
func (r *Rule) Fires(f *Feedback) (bool, json.RawMessage) {
	var data json.RawMessage
	switch {
	case r.When.Event != "" && f.Kind == KindEvent && f.Event == r.When.Event:
		data = f.Data
	case r.When.Property != "" && f.Kind == KindState:
		v, ok := f.Props[r.When.Property]
		if !ok {
			return false, nil
		}
		data = v
	default:
		return false, nil
	}
	var x any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &x); err != nil {
			return false, nil
		}
	}
	for _, c := range r.When.If {
		if !c.holds(x) {
			return false, nil
		}
	}
	if r.Then.InputFrom != "" {
		v, ok := lookup(x, r.Then.InputFrom)
		if !ok {
			return false, nil
		}
		in, err := json.Marshal(v)
		if err != nil {
			return false, nil
		}
		return true, in
	}
	return true, r.Then.Input
}

func (c *Cond) holds(x any) bool {
	v, ok := lookup(x, c.Path)
	if !ok {
		return c.Op == "ne"
	}
	var want any
	if json.Unmarshal(c.Value, &want) != nil {
		return false
	}
	switch c.Op {
	case "eq", "ne":
		g, _ := json.Marshal(v)
		w, _ := json.Marshal(want)
		return (string(g) == string(w)) == (c.Op == "eq")
	}
	a, ok1 := v.(float64)
	b, ok2 := want.(float64)
	if !ok1 || !ok2 {
		return false
	}
	switch c.Op {
	case "gt":
		return a > b
	case "ge":
		return a >= b
	case "lt":
		return a < b
	case "le":
		return a <= b
	}
	return false
}

// lookup returns the value at a dot-separated path of object members.
func lookup(x any, path string) (any, bool) {
	if path == "" {
		return x, true
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '.' {
			continue
		}
		obj, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		if x, ok = obj[path[start:i]]; !ok {
			return nil, false
		}
		start = i + 1
	}
	return x, true
}
