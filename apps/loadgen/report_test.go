package loadgen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func testReport() Report {
	var h Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * 10 * time.Microsecond)
	}
	return Report{
		Requests:       100,
		Duration:       1010 * time.Millisecond,
		RequestsPerSec: 99.01,
		BytesRead:      28899000,
		BytesPerSec:    28612871,
		Connections:    8,
		Latency: Latency{
			Mean: 505 * time.Microsecond, Stdev: 288660 * time.Nanosecond, WithinStdev: 0.6,
			P50: 500 * time.Microsecond, P75: 750 * time.Microsecond, P90: 900 * time.Microsecond,
			P99: 990 * time.Microsecond, Max: time.Millisecond,
		},
		Errors:      Errors{Timeout: 2, Status: 3},
		StatusCodes: map[int]int64{200: 97, 503: 3},
		Histogram:   &h,
	}
}

func TestReportString(t *testing.T) {
	got := testReport().String()
	for _, want := range []string{
		"  Thread Stats   Avg      Stdev     Max   +/- Stdev\n",
		"    Latency   505.00us  288.66us   1.00ms   60.00%\n",
		"  Latency Distribution\n",
		"     50%  500.00us\n",
		"     99%  990.00us\n",
		"  100 requests in 1.01s, 27.56MB read, 8 connections opened\n",
		"  Socket errors: connect 0, refused 0, reset 0, timeout 2, protocol 0, eof 0\n",
		"  Non-2xx or 3xx responses: 3\n",
		"  Status codes: 200 97, 503 3\n",
		"Requests/sec:      99.01\n",
		"Transfer/sec:    27.29MB\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	clean := Report{Requests: 1, StatusCodes: map[int]int64{200: 1}}.String()
	if strings.Contains(clean, "errors") || strings.Contains(clean, "Non-2xx") {
		t.Errorf("a report without errors has an errors line:\n%s", clean)
	}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(testReport())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"requests", "duration_ns", "requests_per_sec", "bytes_read", "bytes_per_sec",
		"connections", "latency", "errors", "status_codes"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
	if len(m) != 9 {
		t.Errorf("JSON has %d keys, want 9 (the histogram left out): %s", len(m), b)
	}
	lat := m["latency"].(map[string]any)
	if lat["p99_ns"] != float64(990*time.Microsecond) || lat["max_ns"] != float64(time.Millisecond) {
		t.Errorf("latency in JSON: %v", lat)
	}
	if errs := m["errors"].(map[string]any); errs["timeout"] != 2.0 || errs["eof"] != 0.0 {
		t.Errorf("errors in JSON: %v", errs)
	}
	if codes := m["status_codes"].(map[string]any); codes["503"] != 3.0 {
		t.Errorf("status codes in JSON: %v", codes)
	}
}
