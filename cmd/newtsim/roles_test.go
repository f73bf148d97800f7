package main

import "testing"

func TestRolesRegistered(t *testing.T) {
	want := map[string]bool{"syscall": true, "tcp": true, "udp": true, "ip": true, "pf": true, "driver": true,
		"echo": true, "prober": true, "hostile": true}
	for _, r := range roleNames() {
		delete(want, r)
	}
	if len(want) != 0 {
		t.Fatalf("roles not registered: %v", want)
	}
}

func TestEveryRoleHasAStarter(t *testing.T) {
	for name, start := range roles {
		if start == nil {
			t.Errorf("role %q has no starter", name)
		}
	}
}
