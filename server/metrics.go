package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// several servers in one test process do not collide.
type metrics struct {
	reg             *prometheus.Registry
	connections     prometheus.Gauge
	connectsRefused prometheus.Counter
	relayRefused    prometheus.Counter
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	stored          prometheus.Counter
	pushes          *prometheus.CounterVec
	slowClients     prometheus.Counter
	loginsRefused   *prometheus.CounterVec // by reason: bad_password, unknown_account, throttled
	hashChecks      prometheus.Counter
	pairingRefused  *prometheus.CounterVec // by reason: wrong_code, invalidated, throttled
	queuedBytes     prometheus.Gauge
	queuedPeak      atomic.Int64 // the most bytes one client ever had queued
	proxyRefused    prometheus.Counter
	devicesRetired  prometheus.Counter

	acceptErrors    *prometheus.CounterVec // by listener
	unauthed        prometheus.Gauge
	unauthedRefused *prometheus.CounterVec // by cap: per_ip, total
	connectTimeouts prometheus.Counter

	things thingMetrics // for things without a node (plainthings.go)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mqtter_connections", Help: "Connected MQTT clients.",
		}),
		relayRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_relay_refused_total", Help: "Relay reservations and circuits refused to peers that are no device bound here.",
		}),
		connectsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_connects_refused_total", Help: "CONNECTs refused (bad credentials, device of another account).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqtter_requests_total", Help: "Requests by method and outcome.",
		}, []string{"method", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mqtter_request_seconds", Help: "Time from a request's arrival to its answer being queued.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12),
		}, []string{"method"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_messages_stored_total", Help: "Messages stored and sequenced.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqtter_pushes_total", Help: "Pushes queued to connected devices, by kind.",
		}, []string{"kind"}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_slow_clients_total", Help: "Clients disconnected for falling too far behind.",
		}),
	}
	m.loginsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqtter_logins_refused_total", Help: "Logins (MQTT CONNECT, HTTP Basic) refused, by reason.",
	}, []string{"reason"})
	m.hashChecks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mqtter_password_hash_checks_total", Help: "bcrypt password comparisons run.",
	})
	m.pairingRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqtter_pairing_refused_total", Help: "bind_thing refused for its pairing code, by reason.",
	}, []string{"reason"})
	m.reg.MustRegister(m.loginsRefused, m.hashChecks, m.pairingRefused)
	m.queuedBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mqtter_outbound_bytes", Help: "Bytes of answers and pushes queued to clients, not yet written.",
	})
	m.proxyRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mqtter_proxy_refused_total", Help: "Proxy requests refused because the account had too many in flight.",
	})
	m.devicesRetired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mqtter_devices_retired_total", Help: "Stale devices removed to make room for a new one of the same account.",
	})
	m.reg.MustRegister(m.queuedBytes, m.proxyRefused, m.devicesRetired,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mqtter_outbound_session_peak_bytes", Help: "The most bytes of answers and pushes one client ever had queued.",
		}, func() float64 { return float64(m.queuedPeak.Load()) }))
	m.acceptErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqtter_accept_errors_total", Help: "Accept errors of the MQTT listeners (retried), by listener.",
	}, []string{"listener"})
	m.unauthed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mqtter_unauthed_connections", Help: "MQTT connections accepted that have not authenticated yet.",
	})
	m.unauthedRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqtter_unauthed_refused_total", Help: "Connections closed at accept because a cap on unauthenticated connections was reached, by cap (per_ip, total).",
	}, []string{"cap"})
	m.connectTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mqtter_connect_timeouts_total", Help: "Connections closed for not delivering their CONNECT within the connect timeout.",
	})
	m.reg.MustRegister(m.acceptErrors, m.unauthed, m.unauthedRefused, m.connectTimeouts)
	m.addThingMetrics()
	m.reg.MustRegister(m.connections, m.connectsRefused, m.relayRefused, m.requests, m.latency, m.stored, m.pushes, m.slowClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(method string, err error, took time.Duration) {
	m.requests.WithLabelValues(method, outcome(err)).Inc()
	m.latency.WithLabelValues(method).Observe(took.Seconds())
}

// queued records that one client now has n bytes queued.
func (m *metrics) queued(n int64) {
	for {
		p := m.queuedPeak.Load()
		if n <= p || m.queuedPeak.CompareAndSwap(p, n) {
			return
		}
	}
}
