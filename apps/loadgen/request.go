package loadgen

import "fmt"

// buildRequest returns the bytes of a GET request for path, made once and
// sent as many times as the run needs.
func buildRequest(host, path string) ([]byte, error) {
	if len(path) == 0 || path[0] != '/' {
		return nil, fmt.Errorf("loadgen: path %q does not begin with /", path)
	}
	for _, c := range []byte(path) {
		if c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("loadgen: path %q holds a space or control byte", path)
		}
	}
	for _, c := range []byte(host) {
		if c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("loadgen: host %q holds a space or control byte", host)
		}
	}
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: newtsim-loadgen\r\nAccept: */*\r\n\r\n", path, host), nil
}
