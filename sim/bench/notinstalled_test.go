package bench

import (
	"strings"
	"testing"
)

// TestNotInstalled: lighttpd missing from PATH is named as missing (httpd
// runs newtsim itself, never); its cells print as not installed, in the
// rows and in the requests-per-second matrix.
func TestNotInstalled(t *testing.T) {
	lighttpd, httpd := HTTPServers[len(HTTPServers)-1], HTTPServers[0]
	if lighttpd.Kind != sideLighttpd {
		t.Fatalf("the last server is %s, want lighttpd", lighttpd.Name)
	}
	t.Setenv("PATH", t.TempDir())
	if got := missingProgram(lighttpd); got != "lighttpd" {
		t.Errorf("missingProgram(lighttpd) with an empty PATH = %q, want lighttpd", got)
	}
	if got := missingProgram(httpd); got != "" {
		t.Errorf("missingProgram(%s) = %q, want none", httpd.Name, got)
	}
	r := &HTTPReport{Bench: "paper", Workloads: HTTPWorkloads[:1], Servers: []HTTPServer{httpd, lighttpd},
		Rows: []HTTPRow{
			{Workload: HTTPWorkloads[0].Name, Server: httpd.Name, ReqPerS: 1000, CorePlan: "p"},
			{Workload: HTTPWorkloads[0].Name, Server: lighttpd.Name, NotInstalled: "lighttpd"},
		}}
	table := r.Table()
	for _, want := range []string{"| " + lighttpd.Name + " | not installed (lighttpd) |", "| 1000 | not installed |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "core plan of "+lighttpd.Name) {
		t.Errorf("table names a core plan for %s, which did not run:\n%s", lighttpd.Name, table)
	}
}
