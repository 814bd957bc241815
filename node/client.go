package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoNode means that no node is running for a home: its api files are
// missing, or the address in api.addr refuses connections (a node that
// crashed leaves a stale one).
var ErrNoNode = errors.New("no node running")

// ErrStreamClosed means that the node ended an event stream: it stopped,
// or the client fell too far behind. A client reconnects and re-reads the
// state it shows.
var ErrStreamClosed = errors.New("the node closed the event stream")

// CallError is a local API call the node answered with a failure status;
// Msg is the node's own words (APIError.Error).
type CallError struct {
	Status int
	Msg    string
}

func (e *CallError) Error() string { return e.Msg }

// Timeouts of the client. A request rarely takes long (the node answers a
// server method within its own call timeout), so requestTimeout only
// bounds a node that hangs; the event stream has none.
const (
	dialTimeout    = 5 * time.Second
	requestTimeout = 60 * time.Second
	maxErrorBody   = 64 << 10
	maxEventLine   = 4 << 20
)

// Client calls a running node's local API.
type Client struct {
	home   string
	base   string // http://host:port
	token  string
	http   *http.Client // requests, with requestTimeout
	stream *http.Client // the event stream, without a timeout
}

// Dial reads the api files of the node running in home and checks that
// it answers on the address. Without a running node the error wraps
// ErrNoNode.
func Dial(home string) (*Client, error) {
	return DialWith(home, nil)
}

// DialFunc makes a Client's connections to the node's address.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialWith is Dial with the connections made by dial (the default dialer
// when nil): a benchmark reaches a node running in another network
// namespace this way.
func DialWith(home string, dial DialFunc) (*Client, error) {
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout}).DialContext
	}
	addr, err := readAPIFile(home, APIAddrFile)
	if err != nil {
		return nil, err
	}
	token, err := readAPIFile(home, APITokenFile)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: bad address %q: %w", filepath.Join(home, APIAddrFile), addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s: %q is not a loopback address; the local API is on loopback only", filepath.Join(home, APIAddrFile), addr)
	}
	c := newClient(home, addr, token, dial)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, c.noNode(err)
	}
	conn.Close()
	return c, nil
}

func newClient(home, addr, token string, dial DialFunc) *Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback: never through a proxy
		DialContext:         dial,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{
		home:   home,
		base:   "http://" + addr,
		token:  token,
		http:   &http.Client{Transport: tr, Timeout: requestTimeout},
		stream: &http.Client{Transport: tr},
	}
}

// readAPIFile reads one of the files a running node keeps in home.
func readAPIFile(home, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(home, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", noNodeError(home, fmt.Sprintf("no %s", name))
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", noNodeError(home, fmt.Sprintf("%s is empty", name))
	}
	return s, nil
}

func noNodeError(home, why string) error {
	return fmt.Errorf("%w in %s (%s; start one with: mqtter node --home %s --server tcp://HOST:PORT --user NAME)",
		ErrNoNode, home, why, home)
}

// noNode turns a failure to connect into ErrNoNode: the api files name an
// address where nothing listens any more.
func (c *Client) noNode(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return noNodeError(c.home, fmt.Sprintf("%s refuses connections", strings.TrimPrefix(c.base, "http://")))
	}
	return err
}

// Status answers what the node is doing now.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Send stores a message in the node's outbox; it returns once the message
// is durable on this device.
func (c *Client) Send(ctx context.Context, req SendRequest) (SendResult, error) {
	var res SendResult
	err := c.do(ctx, http.MethodPost, "/v1/send", req, &res)
	return res, err
}

// History returns the messages this device holds of a conversation with
// a user or of a feeds id, oldest first; limit 0 is the node's default.
func (c *Client) History(ctx context.Context, with string, limit int) (HistoryResult, error) {
	q := url.Values{"with": {with}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var res HistoryResult
	err := c.do(ctx, http.MethodGet, "/v1/history?"+q.Encode(), nil, &res)
	return res, err
}

// Peers lists the devices of related accounts the node knows.
func (c *Client) Peers(ctx context.Context) ([]PeerRow, error) {
	var rows []PeerRow
	err := c.do(ctx, http.MethodGet, "/v1/peers", nil, &rows)
	return rows, err
}

// Sync pushes unsequenced messages to the server and pulls what is new.
func (c *Client) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	err := c.do(ctx, http.MethodPost, "/v1/sync", nil, &res)
	return res, err
}

// Call calls a server method through the node with body (nil is {}) and
// decodes its result into out, unless out is nil.
func (c *Client) Call(ctx context.Context, method string, body, out any) error {
	if body == nil {
		body = struct{}{}
	}
	return c.do(ctx, http.MethodPost, "/v1/call/"+url.PathEscape(method), body, out)
}

// Events follows the node's event stream and calls fn with each event
// until ctx ends (nil), fn fails (its error) or the node ends the stream
// (ErrStreamClosed).
func (c *Client) Events(ctx context.Context, fn func(Event) error) error {
	return c.follow(ctx, "/v1/events", eventsTo(fn))
}

// follow reads the Server-Sent Events stream at path and calls fn with
// each event's type and data until ctx ends (nil), fn fails (its error)
// or the node ends the stream (ErrStreamClosed).
func (c *Client) follow(ctx context.Context, path string, fn func(typ string, data []byte) error) error {
	req, err := c.request(ctx, http.MethodGet, path, nil)
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
		fnErr = fn(typ, data)
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

// request builds a request to the API with the token and a JSON body.
func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do makes one request and decodes a successful answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doWith(ctx, c.http, method, path, body, out)
}

// doWith is do over hc: the stream client for a call that may outlast
// requestTimeout.
func (c *Client) doWith(ctx context.Context, hc *http.Client, method, path string, body, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return c.noNode(err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// checkStatus turns a failure status into a *CallError with the node's
// message, or the status text when the body has none.
func checkStatus(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var ae APIError
	msg := ""
	if json.Unmarshal(b, &ae) == nil {
		msg = ae.Error
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	if msg == "" {
		msg = fmt.Sprintf("local api: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return &CallError{Status: resp.StatusCode, Msg: msg}
}

// readEvents parses a Server-Sent Events stream (lines ending in "\n" or
// "\r\n") and calls fn with each event's data decoded as an Event. The
// "event:" field fills Event.Type when the data leaves it empty; comments
// and the id and retry fields are ignored. It returns fn's error, a
// decoding or read error, or ErrStreamClosed at the end of the stream.
func readEvents(r io.Reader, fn func(Event) error) error {
	return readSSE(r, eventsTo(fn))
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

// eventsTo decodes each Server-Sent Event of the event stream for fn.
func eventsTo(fn func(Event) error) func(typ string, data []byte) error {
	return func(typ string, data []byte) error {
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("event stream: bad event %q: %w", typ, err)
		}
		if ev.Type == "" {
			ev.Type = typ
		}
		return fn(ev)
	}
}

// ErrBackupCut is returned by Export when the node's stream ends before its
// end marker: the file written is incomplete.
var ErrBackupCut = errors.New("the backup stream ended early")

// Export writes this device's history as a backup (see BackupHeader) to w
// and returns how many messages it holds. progress, when set, is called
// with the count so far after every message.
func (c *Client) Export(ctx context.Context, w io.Writer, progress func(messages int)) (int, error) {
	req, err := c.request(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return 0, c.noNode(err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxBackupLine)
	const endMarker = `{"end":true}`
	n, lines := 0, 0
	for sc.Scan() {
		line := sc.Bytes()
		lines++
		if _, err := w.Write(append(line, '\n')); err != nil {
			return n, err
		}
		if string(line) == endMarker {
			return n, nil
		}
		if lines > 1 {
			n++
			if progress != nil {
				progress(n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, ErrBackupCut
}

// Import sends a backup read from r to the node, which stores what checks
// out.
func (c *Client) Import(ctx context.Context, r io.Reader) (ImportResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/backup", r)
	if err != nil {
		return ImportResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.stream.Do(req)
	if err != nil {
		return ImportResult{}, c.noNode(err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return ImportResult{}, err
	}
	var res ImportResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("backup import: decode answer: %w", err)
	}
	return res, nil
}
