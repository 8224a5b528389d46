// Prints the created timestamp of every counter and histogram series of a
// protobuf exposition (length-delimited io.prometheus.client.MetricFamily
// messages on stdin), decoded by Go's protobuf module and Prometheus's
// client_model, not by code of ours: one JSON object per line,
//
//	{"name":"myapp_processed_ops_total","labels":{"status":"200"},"seconds":1764208800,"nanos":123000000}
//
// with "seconds" and "nanos" null for a series without one. Exits 1 when the
// body does not decode.
//
// Debian 12's client_model (0.3.0) predates the created_timestamp field, so it
// is built with Debian 13's Go and modules, unpacked by scripts/lib.sh's
// use_trixie_tools, with no module download:
//
//	source scripts/lib.sh
//	use_trixie_tools golang-1.24-go golang-1.24-src golang-github-prometheus-client-model-dev golang-google-protobuf-dev
//	GO111MODULE=off GOPATH=$TRIXIE_TOOLS/usr/share/gocode $TRIXIE_TOOLS/usr/lib/go-1.24/bin/go build -o target/go-created ./scripts/go-created
//	curl -s -H 'Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited' \
//	  localhost:8080/metrics | target/go-created
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type series struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Seconds *int64            `json:"seconds"`
	Nanos   *int32            `json:"nanos"`
}

func main() {
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for {
		var family dto.MetricFamily
		err := protodelim.UnmarshalFrom(in, &family)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Println("decode error:", err)
			os.Exit(1)
		}
		for _, metric := range family.GetMetric() {
			var created *timestamppb.Timestamp
			switch family.GetType() {
			case dto.MetricType_COUNTER:
				created = metric.GetCounter().GetCreatedTimestamp()
			case dto.MetricType_HISTOGRAM:
				created = metric.GetHistogram().GetCreatedTimestamp()
			default:
				continue
			}
			s := series{Name: family.GetName(), Labels: map[string]string{}}
			for _, label := range metric.GetLabel() {
				s.Labels[label.GetName()] = label.GetValue()
			}
			if created != nil {
				seconds, nanos := created.GetSeconds(), created.GetNanos()
				s.Seconds, s.Nanos = &seconds, &nanos
			}
			if err := out.Encode(s); err != nil {
				fmt.Println("write error:", err)
				os.Exit(1)
			}
		}
	}
}
