package server

import (
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
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	stored          prometheus.Counter
	pushes          *prometheus.CounterVec
	slowClients     prometheus.Counter

	acceptErrors    *prometheus.CounterVec // by listener
	unauthed        prometheus.Gauge
	unauthedRefused *prometheus.CounterVec // by cap: per_ip, total
	connectTimeouts prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mqtter_connections", Help: "Connected MQTT clients.",
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
	m.reg.MustRegister(m.connections, m.connectsRefused, m.requests, m.latency, m.stored, m.pushes, m.slowClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(method string, err error, took time.Duration) {
	m.requests.WithLabelValues(method, outcome(err)).Inc()
	m.latency.WithLabelValues(method).Observe(took.Seconds())
}
