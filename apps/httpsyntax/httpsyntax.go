// Package httpsyntax holds the lexical rules of HTTP/1.1 fields (RFC 9110
// section 5) that both ends of newtsim's HTTP need: the server's request
// parser (apps/httpd) and the load generator's response parser
// (apps/loadgen). Each works on bytes as they arrived and allocates
// nothing.
package httpsyntax

// TrimOWS trims the optional white space (spaces and tabs) around b.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// EqualFold reports whether b is lower, a lower-case ASCII string, in any
// ASCII case (no Unicode folding: field names and tokens are ASCII).
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// IsToken reports whether b is a non-empty token (RFC 9110 section 5.6.2).
func IsToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// IsTokenByte reports whether c may appear in a token.
func IsTokenByte(c byte) bool { return tchar[c] }

// tchar marks the bytes allowed in a token.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
