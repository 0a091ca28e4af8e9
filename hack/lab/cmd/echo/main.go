// echo is the lab's backend: it answers every request with what it saw of the client.
//
// It reports the TCP peer, the X-Forwarded-For and X-Real-Ip headers it received, and,
// when a connection starts with a PROXY protocol header (v1 or v2), the source address
// that header carried. "client" is the address a backend behind an honest edge proxy
// takes as the client's: the rightmost X-Forwarded-For entry that is not one of the
// proxies in $TRUSTED_PROXIES (CIDRs, comma-separated; entries further left may be
// forged by the client), else X-Real-Ip, else the PROXY source, else the peer.
//
// It also reports every request header as received (name -> every line's value), so a
// test can check that no forged value reached it under any name.
//
//	GET /      text: "your address: 198.51.100.10" and the details
//	GET /json  the same as a JSON object
//	GET /healthz
//
// ?delay=DURATION (e.g. 1.5s) on / or /json answers only after that long: a request
// that is in flight while the proxy in front shuts down.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type seen struct {
	Client        string `json:"client"`
	Peer          string `json:"peer"`
	XForwardedFor string `json:"xForwardedFor"`
	XRealIP       string `json:"xRealIp"`
	ProxySource   string `json:"proxySource"`
	Host          string `json:"host"`
	Pod           string `json:"pod"`
	Node          string `json:"node"`
	// Every header as received; Go's server joins nothing, so duplicate lines stay apart.
	Headers map[string][]string `json:"headers"`
}

type ctxKey struct{}

// conn reads a PROXY header off the front of the stream, if there is one, on its
// first Read (in the connection's own goroutine, so a silent peer blocks no one) and
// remembers the source address it carried.
type conn struct {
	net.Conn
	r           *bufio.Reader
	once        sync.Once
	err         error
	proxySource string
}

func (c *conn) Read(p []byte) (int, error) {
	c.once.Do(func() { c.proxySource, c.err = readProxyHeader(c.r) })
	if c.err != nil {
		return 0, c.err
	}
	return c.r.Read(p)
}

var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader consumes a PROXY v1 or v2 header if the stream starts with one.
func readProxyHeader(r *bufio.Reader) (string, error) {
	head, err := r.Peek(6)
	if err != nil {
		return "", nil // too short to be a header; let HTTP report it
	}
	if string(head) == "PROXY " {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		fields := strings.Fields(line) // PROXY TCP4 src dst sport dport
		if len(fields) >= 3 && fields[1] != "UNKNOWN" {
			return fields[2], nil
		}
		return "", nil
	}
	if sig, err := r.Peek(16); err == nil && bytes.Equal(sig[:12], v2sig) {
		length := int(binary.BigEndian.Uint16(sig[14:16]))
		buf := make([]byte, 16+length)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		family, body := buf[13]>>4, buf[16:]
		switch {
		case family == 1 && len(body) >= 12:
			return net.IP(body[0:4]).String(), nil
		case family == 2 && len(body) >= 36:
			return net.IP(body[0:16]).String(), nil
		}
		return "", nil
	}
	return "", nil
}

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, r: bufio.NewReader(c)}, nil
}

var trusted = parseCIDRs(os.Getenv("TRUSTED_PROXIES"))

func parseCIDRs(list string) []*net.IPNet {
	var nets []*net.IPNet
	for _, c := range strings.Split(list, ",") {
		if _, n, err := net.ParseCIDR(strings.TrimSpace(c)); err == nil {
			nets = append(nets, n)
		}
	}
	return nets
}

// untrustedClient walks the chain from the right, past the trusted proxies.
func untrustedClient(chain []string) string {
	for i := len(chain) - 1; i >= 0; i-- {
		entry := strings.TrimSpace(chain[i])
		ip := net.ParseIP(entry)
		isTrusted := false
		for _, n := range trusted {
			if ip != nil && n.Contains(ip) {
				isTrusted = true
			}
		}
		if !isTrusted {
			return entry
		}
	}
	return strings.TrimSpace(chain[0])
}

func describe(r *http.Request) seen {
	s := seen{
		Peer:          r.RemoteAddr,
		XForwardedFor: r.Header.Get("X-Forwarded-For"),
		XRealIP:       r.Header.Get("X-Real-Ip"),
		Host:          r.Host,
		Pod:           os.Getenv("POD_NAME"),
		Node:          os.Getenv("NODE_NAME"),
		Headers:       r.Header,
	}
	if c, ok := r.Context().Value(ctxKey{}).(*conn); ok {
		s.ProxySource = c.proxySource
	}
	peerIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	switch {
	case s.XForwardedFor != "":
		s.Client = untrustedClient(strings.Split(s.XForwardedFor, ","))
	case s.XRealIP != "":
		s.Client = s.XRealIP
	case s.ProxySource != "":
		s.Client = s.ProxySource
	default:
		s.Client = peerIP
	}
	return s
}

// delay waits for the request's ?delay=; false (and a 400) if it is not a duration.
func delay(w http.ResponseWriter, r *http.Request) bool {
	value := r.URL.Query().Get("delay")
	if value == "" {
		return true
	}
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 || d > time.Minute {
		http.Error(w, "delay: a duration up to 1m, such as 1.5s", http.StatusBadRequest)
		return false
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		if !delay(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(describe(r))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !delay(w, r) {
			return
		}
		s := describe(r)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "your address: %s\n", s.Client)
		fmt.Fprintf(w, "peer: %s\nx-forwarded-for: %s\nx-real-ip: %s\nproxy-protocol source: %s\n",
			s.Peer, s.XForwardedFor, s.XRealIP, s.ProxySource)
		fmt.Fprintf(w, "served by: pod %s on node %s\n", s.Pod, s.Node)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*conn); ok {
				return context.WithValue(ctx, ctxKey{}, pc)
			}
			return ctx
		},
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(listener{ln}); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
