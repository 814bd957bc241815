package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// ErrTooMany is the kind of Error a request gets when its account already
// has as many of that kind in flight as it may.
var ErrTooMany = errors.New("too many requests")

// proxy performs the http:// and https:// topics' requests, to allow-listed
// hosts only (redirects included). The requests run on a pool of their own,
// off the request workers and off the client's request order: a slow host
// then delays only the proxy requests, never another method.
type proxy struct {
	allow   map[string]bool // "host" (any port) or "host:port"
	client  *http.Client
	timeout time.Duration
	perUser int
	slots   chan struct{} // one per running request

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines of accepted requests

	mu       sync.Mutex
	inFlight map[string]int // account → accepted and not yet answered
	closed   bool
}

func newProxy(allow []string, workers, perUser int, timeout time.Duration) *proxy {
	p := &proxy{allow: make(map[string]bool), timeout: timeout, perUser: perUser,
		slots: make(chan struct{}, workers), inFlight: make(map[string]int)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, h := range allow {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			p.allow[h] = true
		}
	}
	p.client = &http.Client{
		Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if !p.allowed(req.URL.Hostname(), req.URL.Port()) {
				return fmt.Errorf("redirect to %s: not on the allow-list", req.URL.Host)
			}
			return nil
		},
	}
	return p
}

// start runs fn on a goroutine of its own once a pool slot is free, with a
// context that ends after the proxy timeout (the wait included) or at
// close; fn gets ok false if that came first. start refuses, running
// nothing, when account already has perUser requests in flight or the
// proxy is closed.
func (p *proxy) start(account string, fn func(ctx context.Context, ok bool)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: server closing")
	}
	if p.inFlight[account] >= p.perUser {
		return fmt.Errorf("%w: too many proxy requests in flight, at most %d per account", ErrTooMany, p.perUser)
	}
	p.inFlight[account]++
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.done(account)
		ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
		defer cancel()
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			fn(ctx, false)
			return
		}
		defer func() { <-p.slots }()
		fn(ctx, true)
	}()
	return nil
}

func (p *proxy) done(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight[account]--; p.inFlight[account] <= 0 {
		delete(p.inFlight, account)
	}
}

// close cancels the requests in flight and waits for their goroutines. It
// is safe to call more than once.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

func (p *proxy) allowed(host, port string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	if p.allow[host] {
		return true
	}
	return port != "" && p.allow[net.JoinHostPort(host, port)]
}

var proxyMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// proxyRequest checks a proxy request and hands it to the proxy pool,
// which answers it.
func (s *Server) proxyRequest(_ context.Context, c *call, t wire.Topic) (any, error) {
	if !s.proxy.allowed(t.Host, t.Port) {
		return nil, forbidden("proxy: host %s is not on the allow-list", t.Host)
	}
	var req wire.ProxyRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !proxyMethods[method] {
		return nil, badRequest("proxy: method %q", req.Method)
	}
	url := t
	url.HasFragment, url.Fragment = false, ""
	hreq, err := http.NewRequest(method, url.String(), strings.NewReader(req.Body))
	if err != nil {
		return nil, badRequest("proxy: %v", err)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	err = s.proxy.start(c.sess.account, func(ctx context.Context, ok bool) {
		if !ok {
			c.answer(wire.ProxyResponse{Header: map[string][]string{}, Err: "proxy: no free slot before the timeout"}, nil)
			return
		}
		c.answer(s.proxyDo(hreq.WithContext(ctx)), nil)
	})
	if err != nil {
		if errors.Is(err, ErrTooMany) {
			s.metrics.proxyRefused.Inc()
		}
		return nil, err
	}
	return nil, errDeferred
}

// proxyDo performs one proxy request; failures go in the response's Err.
func (s *Server) proxyDo(hreq *http.Request) wire.ProxyResponse {
	resp, err := s.proxy.client.Do(hreq)
	if err != nil {
		return wire.ProxyResponse{Header: map[string][]string{}, Err: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.cfg.MaxBody)+1))
	out := wire.ProxyResponse{Header: resp.Header, StatusCode: resp.StatusCode}
	switch {
	case err != nil:
		out.Err = err.Error()
	case len(body) > s.cfg.MaxBody:
		out.Err = fmt.Sprintf("response body over %d bytes", s.cfg.MaxBody)
	default:
		out.Body = string(body)
	}
	return out
}
