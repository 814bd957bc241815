package node

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mqtter/mqtter/thing"
)

// Do sends a command to a thing. With req.Wait it returns once the command
// has a result, was rejected or timed out: the wait is bounded by the
// command's own timeout, so it does not take the client's request timeout.
func (c *Client) Do(ctx context.Context, thingName string, req DoRequest) (CommandRow, error) {
	var row CommandRow
	path := "/v1/things/" + url.PathEscape(thingName) + "/do"
	if !req.Wait {
		err := c.do(ctx, http.MethodPost, path, req, &row)
		return row, err
	}
	err := c.doWith(ctx, c.stream, http.MethodPost, path, req, &row)
	return row, err
}

// ThingState returns the last properties a thing reported and its recent
// events.
func (c *Client) ThingState(ctx context.Context, thingName string) (ThingState, error) {
	var st ThingState
	err := c.do(ctx, http.MethodGet, "/v1/things/"+url.PathEscape(thingName)+"/state", nil, &st)
	return st, err
}

// Describe returns a thing's description: the server's, or the cached one
// when the server has none or is unreachable.
func (c *Client) Describe(ctx context.Context, thingName string) (ThingDescription, error) {
	var d ThingDescription
	err := c.do(ctx, http.MethodGet, "/v1/things/"+url.PathEscape(thingName)+"/description", nil, &d)
	return d, err
}

// Commands returns the latest commands sent to a thing, newest first;
// limit 0 is the node's default.
func (c *Client) Commands(ctx context.Context, thingName string, limit int) ([]CommandRow, error) {
	path := "/v1/things/" + url.PathEscape(thingName) + "/commands"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var rows []CommandRow
	err := c.do(ctx, http.MethodGet, path, nil, &rows)
	return rows, err
}

// AddRule makes a rule, signed by the node's device, and adds it.
func (c *Client) AddRule(ctx context.Context, req RuleRequest) (AddRuleResult, error) {
	var res AddRuleResult
	err := c.do(ctx, http.MethodPost, "/v1/things/rules", req, &res)
	return res, err
}

// Rules lists the rules of a thing ("" for every rule the account may
// see).
func (c *Client) Rules(ctx context.Context, thingName string) ([]thing.Rule, error) {
	path := "/v1/things/rules"
	if thingName != "" {
		path += "?" + url.Values{"thing": {thingName}}.Encode()
	}
	var rules []thing.Rule
	err := c.do(ctx, http.MethodGet, path, nil, &rules)
	return rules, err
}

// RemoveRule removes a rule by its id.
func (c *Client) RemoveRule(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/things/rules/"+url.PathEscape(id), nil, nil)
}
