package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mqtter/mqtter/thing"
)

// ThingInvocations follows GET /v1/thing/invocations and calls fn with
// each command the thing accepted, until ctx ends (nil), fn fails (its
// error) or the node ends the stream (ErrStreamClosed). A device program
// that is not the node's child runs them and answers with ThingFeedback.
func (c *Client) ThingInvocations(ctx context.Context, fn func(thing.Invocation) error) error {
	return c.follow(ctx, "/v1/thing/invocations", func(typ string, data []byte) error {
		if typ != EventInvocation {
			return nil
		}
		var inv thing.Invocation
		if err := json.Unmarshal(data, &inv); err != nil {
			return fmt.Errorf("invocation stream: %w", err)
		}
		return fn(inv)
	})
}

// ThingFeedback posts feedback as the thing's device program would write
// it (POST /v1/thing/feedback).
func (c *Client) ThingFeedback(ctx context.Context, fb thing.Feedback) error {
	return c.do(ctx, http.MethodPost, "/v1/thing/feedback", fb, nil)
}
