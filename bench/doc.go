// Package bench measures MQTTER's server as a user sees it, from outside:
// relay latency and throughput of im://modulus/send through a real
// `mqtter server` process, the same paho clients doing plain QoS 1
// publish/subscribe through Mosquitto for comparison, and resident memory
// with many idle connections against a bare mochi broker and Mosquitto.
//
// Every broker runs as a separate process on 127.0.0.1. The figures are
// reported, never asserted: a benchmark run fails only when it cannot set
// itself up (a broker does not start, an account cannot be made).
// Command mqbench (bench/cmd/mqbench) is the entry point; `make bench` runs it.
package bench
