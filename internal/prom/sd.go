// This file writes and reads Prometheus file-based service discovery
// targets: the JSON file a file_sd_configs entry names, which Prometheus
// re-reads whenever it changes. newtsim writes one when its servers come
// up, so that a Prometheus server scrapes each server's metrics port.
//
// The format is a list of target groups, one per target here:
//
//	[
//	  {"targets": ["127.0.0.1:9101"], "labels": {"newtsim_process": "tcp"}},
//	  {"targets": ["127.0.0.1:9102"], "labels": {"newtsim_process": "ip"}}
//	]

package prom

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/newtsim/newtsim/internal/atomicfile"
)

// Target is one scrape target: the host:port Prometheus scrapes and the
// labels it attaches to every series scraped from it.
type Target struct {
	// Addr is host:port, without a scheme or a path.
	Addr string
	// Labels are extra labels, such as newtsim_process=tcp. Names follow
	// Prometheus's rules: [a-zA-Z_][a-zA-Z0-9_]*.
	Labels map[string]string
}

// group is one target group of the file format.
type group struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Validate reports whether t can be written to a targets file.
func (t Target) Validate() error {
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("prom: target %q: want host:port", t.Addr)
	}
	for name := range t.Labels {
		if !validLabelName(name) {
			return fmt.Errorf("prom: target %s: invalid label name %q", t.Addr, name)
		}
	}
	return nil
}

// validLabelName reports whether name matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// WriteTargets writes targets to the file at path, replacing it
// atomically (see package internal/atomicfile), so Prometheus never reads a
// half-written file. The path must end in ".json", the only JSON name
// file_sd_configs reads; the temporary file's name does not, so Prometheus
// ignores it. The file is readable by everyone: Prometheus may run as
// another user, and the file holds no secrets.
func WriteTargets(path string, targets []Target) error {
	if filepath.Ext(path) != ".json" {
		return fmt.Errorf("prom: targets file %s: name must end in .json for Prometheus to read it", path)
	}
	groups := make([]group, 0, len(targets))
	for _, t := range targets {
		if err := t.Validate(); err != nil {
			return err
		}
		groups = append(groups, group{Targets: []string{t.Addr}, Labels: t.Labels})
	}
	if err := atomicfile.WriteJSON(path, groups); err != nil {
		return fmt.Errorf("prom: targets: %w", err)
	}
	return nil
}

// ReadTargets reads a targets file in the format WriteTargets writes; a
// group with several targets yields one Target each, sharing the labels.
func ReadTargets(path string) ([]Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prom: read targets: %w", err)
	}
	var groups []group
	if err := json.Unmarshal(data, &groups); err != nil {
		return nil, fmt.Errorf("prom: read targets %s: %w", path, err)
	}
	var targets []Target
	for _, g := range groups {
		for _, addr := range g.Targets {
			targets = append(targets, Target{Addr: addr, Labels: g.Labels})
		}
	}
	return targets, nil
}
