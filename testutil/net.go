package testutil

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
)

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment
// ago.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns one TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

var sigV4CredentialRe = regexp.MustCompile(`Credential=([^/,\s]+)/`)

// SignedBy is the access key ID of a SigV4 Authorization header ("" if none).
func SignedBy(h http.Header) string {
	if m := sigV4CredentialRe.FindStringSubmatch(h.Get("Authorization")); m != nil {
		return m[1]
	}
	return ""
}
