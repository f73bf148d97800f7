package httpsyntax

import "testing"

func TestTrimOWS(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""}, {" \t", ""}, {"  a b\t", "a b"}, {"x", "x"}, {"\tkeep-alive ", "keep-alive"},
	}
	for _, tt := range tests {
		if got := string(TrimOWS([]byte(tt.in))); got != tt.want {
			t.Errorf("TrimOWS(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqualFold(t *testing.T) {
	tests := []struct {
		in, lower string
		want      bool
	}{
		{"Content-Length", "content-length", true}, {"CONNECTION", "connection", true},
		{"connectio", "connection", false}, {"Kelvin", "kelvin", true}, {"\xe2\x84\xaaelvin", "kelvin", false},
	}
	for _, tt := range tests {
		if got := EqualFold([]byte(tt.in), tt.lower); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tt.in, tt.lower, got, tt.want)
		}
	}
}

func TestIsToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"GET", true}, {"Content-Length", true}, {"x!#$%&'*+-.^_`|~9", true},
		{"", false}, {"a b", false}, {"a:b", false}, {"caf\xc3\xa9", false}, {"a\x7f", false},
	}
	for _, tt := range tests {
		if got := IsToken([]byte(tt.in)); got != tt.want {
			t.Errorf("IsToken(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for c := 0; c < 256; c++ {
		if IsTokenByte(byte(c)) != IsToken([]byte{byte(c)}) {
			t.Fatalf("IsTokenByte(%#x) disagrees with IsToken", c)
		}
	}
}
