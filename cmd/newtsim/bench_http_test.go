package main

import (
	"slices"
	"testing"
)

// TestBenchHTTPSelection: bench http measures --servers and --workloads
// when named, else --server's and --workload's one, and refuses both
// forms of one flag at once.
func TestBenchHTTPSelection(t *testing.T) {
	for _, c := range []struct {
		args            []string
		servers, wloads []string
		wantErr         bool
	}{
		{nil, []string{"httpd-exposed"}, []string{"20B-10rpc"}, false},
		{[]string{"--server", "httpd-linux", "--workload", "20B-1rpc"}, []string{"httpd-linux"}, []string{"20B-1rpc"}, false},
		{[]string{"--servers", "httpd-linux,httpd-monolith,httpd-exposed", "--workloads", "20B-10rpc"},
			[]string{"httpd-linux", "httpd-monolith", "httpd-exposed"}, []string{"20B-10rpc"}, false},
		{[]string{"--server", "httpd-linux", "--servers", "httpd-monolith"}, nil, nil, true},
	} {
		cmd := newBenchHTTPCommand()
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatal(err)
		}
		fl := cmd.Flags()
		server, _ := fl.GetString("server")
		servers, _ := fl.GetStringSlice("servers")
		workload, _ := fl.GetString("workload")
		workloads, _ := fl.GetStringSlice("workloads")
		ss, serr := oneOrMany(cmd, "server", server, servers)
		ws, werr := oneOrMany(cmd, "workload", workload, workloads)
		if c.wantErr {
			if serr == nil && werr == nil {
				t.Errorf("%v: no error", c.args)
			}
			continue
		}
		if serr != nil || werr != nil || !slices.Equal(ss, c.servers) || !slices.Equal(ws, c.wloads) {
			t.Errorf("%v: servers %v %v, workloads %v %v; want %v, %v", c.args, ss, serr, ws, werr, c.servers, c.wloads)
		}
	}
}
