package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mqtter/mqtter/wire"
)

const proxyTimeout = 15 * time.Second

// proxy performs the http:// and https:// topics' requests, to allow-listed
// hosts only (redirects included).
type proxy struct {
	allow  map[string]bool // "host" (any port) or "host:port"
	client *http.Client
}

func newProxy(allow []string) *proxy {
	p := &proxy{allow: make(map[string]bool)}
	for _, h := range allow {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			p.allow[h] = true
		}
	}
	p.client = &http.Client{
		Timeout: proxyTimeout,
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

func (p *proxy) allowed(host, port string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	if p.allow[host] {
		return true
	}
	return port != "" && p.allow[net.JoinHostPort(host, port)]
}

var proxyMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func (s *Server) proxyRequest(ctx context.Context, c *call, t wire.Topic) (any, error) {
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
	hreq, err := http.NewRequestWithContext(ctx, method, url.String(), strings.NewReader(req.Body))
	if err != nil {
		return nil, badRequest("proxy: %v", err)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	resp, err := s.proxy.client.Do(hreq)
	if err != nil {
		return wire.ProxyResponse{Header: map[string][]string{}, Err: err.Error()}, nil
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
	return out, nil
}
