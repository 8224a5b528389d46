// The seed's design in Go, for the side-by-side benchmarks of scripts/bench.sh:
// net/http, client_golang and promhttp; GET /work sleeps a random time in
// [min, max] ms, fails at a random rate, and is counted and timed.
// -no-metrics leaves out the counting, the timing and /metrics: the
// uninstrumented variant, whose difference is what the instrumentation costs.
//
// Built with Debian's golang-go and golang-github-prometheus-client-golang-dev,
// with no module downloads:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o target/bench/go-seed ./benches/go-seed
package main

import (
	"encoding/json"
	"flag"
	"log"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	processed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "myapp_processed_ops_total",
		Help: "The total number of processed events",
	}, []string{"status"})
	duration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "myapp_request_duration_seconds",
		Help:    "Time taken to answer a /work request, in seconds",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 5},
	})
)

type workDone struct {
	DelayMs int64 `json:"delay_ms"`
}

type workFailed struct {
	DelayMs int64  `json:"delay_ms"`
	Error   string `json:"error"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	minDelay := flag.Int64("min-delay-ms", 0, "shortest simulated work, ms")
	maxDelay := flag.Int64("max-delay-ms", 2000, "longest simulated work, ms (included)")
	errorRate := flag.Float64("error-rate", 0.5, "share of /work answers that are 500")
	noMetrics := flag.Bool("no-metrics", false, "no counting, no timing and no /metrics")
	flag.Parse()
	if *minDelay < 0 || *maxDelay < *minDelay || *errorRate < 0 || *errorRate > 1 {
		log.Fatal("need 0 <= --min-delay-ms <= --max-delay-ms and 0 <= --error-rate <= 1")
	}
	rand.Seed(time.Now().UnixNano())

	// answer does the work and writes the answer; it returns the status.
	answer := func(w http.ResponseWriter) int {
		delay := *minDelay + rand.Int63n(*maxDelay-*minDelay+1)
		fails := rand.Float64() < *errorRate
		time.Sleep(time.Duration(delay) * time.Millisecond)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		status := http.StatusOK
		var body interface{} = workDone{DelayMs: delay}
		if fails {
			status = http.StatusInternalServerError
			body = workFailed{DelayMs: delay, Error: "simulated failure"}
		}
		payload, _ := json.Marshal(body)
		w.WriteHeader(status)
		w.Write(payload)
		return status
	}

	mux := http.NewServeMux()
	if *noMetrics {
		mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) { answer(w) })
	} else {
		mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			status := answer(w)
			duration.Observe(time.Since(start).Seconds())
			processed.WithLabelValues(strconv.Itoa(status)).Inc()
		})
		mux.Handle("/metrics", promhttp.Handler())
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// scripts/bench.sh reads the bound address from this line (port 0 works).
	log.Printf("listening address=%s", listener.Addr())
	log.Fatal(http.Serve(listener, mux))
}
