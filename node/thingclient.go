package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mqtter/mqtter/thing"
)

// ThingInvocations follows GET /v1/thing/invocations and calls fn with
// each command the thing accepted, until ctx ends (nil), fn fails (its
// error) or the node ends the stream (ErrStreamClosed). A device program
// that is not the node's child runs them and answers with ThingFeedback.
func (c *Client) ThingInvocations(ctx context.Context, fn func(thing.Invocation) error) error {
	req, err := c.request(ctx, http.MethodGet, "/v1/thing/invocations", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.noNode(err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	var fnErr error
	err = readSSE(resp.Body, func(typ string, data []byte) error {
		if typ != EventInvocation {
			return nil
		}
		var inv thing.Invocation
		if err := json.Unmarshal(data, &inv); err != nil {
			return fmt.Errorf("invocation stream: %w", err)
		}
		fnErr = fn(inv)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return nil
	}
	return err
}

// ThingFeedback posts feedback as the thing's device program would write
// it (POST /v1/thing/feedback).
func (c *Client) ThingFeedback(ctx context.Context, fb thing.Feedback) error {
	return c.do(ctx, http.MethodPost, "/v1/thing/feedback", fb, nil)
}

// readSSE calls fn with each Server-Sent Event's type and data, until the
// stream ends (ErrStreamClosed) or fn fails.
func readSSE(r io.Reader, fn func(typ string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	var typ string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				if err := fn(typ, []byte(strings.Join(data, "\n"))); err != nil {
					return err
				}
			}
			typ, data = "", nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return ErrStreamClosed
}
