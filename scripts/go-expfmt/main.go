// Decodes a protobuf exposition of myapp with Go's own decoder (expfmt and
// client_model, as Prometheus reads it) and prints what it found in the
// latency histogram and the request counter: the native buckets (schema,
// zero bucket, spans, counts), whether they add up to the count, and the
// exemplars. Exits 1 when the body does not decode or the buckets do not add
// up to the count.
//
// Built from Debian's golang-go and golang-github-prometheus-common-dev, with
// no module download:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o target/go-expfmt ./scripts/go-expfmt
//	curl -s -H 'Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited' \
//	  localhost:8080/metrics | target/go-expfmt
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func exemplar(e *dto.Exemplar) string {
	if e == nil {
		return "none"
	}
	labels := ""
	for _, l := range e.GetLabel() {
		labels += fmt.Sprintf("%s=%s", l.GetName(), l.GetValue())
	}
	ts := e.GetTimestamp()
	return fmt.Sprintf("%s value=%g time=%s", labels, e.GetValue(),
		time.Unix(ts.GetSeconds(), int64(ts.GetNanos())).UTC().Format(time.RFC3339Nano))
}

func main() {
	decoder := expfmt.NewDecoder(bufio.NewReader(os.Stdin), expfmt.FmtProtoDelim)
	failed := false
	families := 0
	for {
		var family dto.MetricFamily
		err := decoder.Decode(&family)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println("decode error:", err)
			os.Exit(1)
		}
		families++
		switch family.GetName() {
		case "myapp_processed_ops_total":
			for _, m := range family.GetMetric() {
				fmt.Printf("counter %s=%s value=%g exemplar %s\n", m.GetLabel()[0].GetName(),
					m.GetLabel()[0].GetValue(), m.GetCounter().GetValue(), exemplar(m.GetCounter().GetExemplar()))
			}
		case "myapp_request_duration_seconds":
			h := family.GetMetric()[0].GetHistogram()
			var total, count int64
			for _, delta := range h.GetPositiveDelta() {
				count += delta
				total += count
			}
			spans := ""
			buckets := 0
			for _, s := range h.GetPositiveSpan() {
				spans += fmt.Sprintf(" %d:%d", s.GetOffset(), s.GetLength())
				buckets += int(s.GetLength())
			}
			total += int64(h.GetZeroCount())
			fmt.Printf("histogram count=%d sum=%g schema=%d zero_threshold=%g zero_count=%d buckets=%d spans=%s native_total=%d\n",
				h.GetSampleCount(), h.GetSampleSum(), h.GetSchema(), h.GetZeroThreshold(), h.GetZeroCount(),
				buckets, spans, total)
			if buckets != len(h.GetPositiveDelta()) || uint64(total) != h.GetSampleCount() {
				fmt.Println("FAIL: the native buckets do not add up to the count")
				failed = true
			}
			for _, b := range h.GetBucket() {
				if b.GetExemplar() != nil {
					fmt.Printf("bucket le=%g cumulative=%d exemplar %s\n", b.GetUpperBound(), b.GetCumulativeCount(), exemplar(b.GetExemplar()))
				}
			}
		}
	}
	fmt.Printf("families=%d\n", families)
	if failed {
		os.Exit(1)
	}
}
