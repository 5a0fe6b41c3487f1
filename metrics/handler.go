package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Server serves /metrics, /healthz and /readyz.
//
//   - /metrics: the metrics gathered from the registry.
//   - /healthz: 200 "ok" while the process runs (liveness).
//   - /readyz:  200 "ok" when ready returns nil, else 503 with the error text
//     (readiness: NATS connected, cache caught up, consumer bound).
type Server struct {
	addr  string
	log   *zap.Logger
	srv   *http.Server
	ready func() error

	mu    sync.Mutex
	ln    net.Listener
	done  chan struct{} // closed when Serve returns
	serve error         // Serve's error, other than http.ErrServerClosed
}

// NewServer returns a server for addr (":9090", or "127.0.0.1:0" in tests)
// that exposes reg. A nil ready means always ready; a nil log discards.
func NewServer(addr string, reg prometheus.Gatherer, ready func() error, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	if ready == nil {
		ready = func() error { return nil }
	}
	s := &Server{addr: addr, log: log, ready: ready}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      zapErrorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	return s
}

// Run listens on the address, says ready once the listener is bound (Addr
// is then valid), and serves until ctx ends; it then stops accepting
// connections and lets the requests in progress finish for up to 5 s. A
// listener that fails ends it with the error.
func (s *Server) Run(ctx context.Context, ready func()) error {
	if err := s.listen(); err != nil {
		return err
	}
	ready()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-done:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.shutdown(sctx)
}

// listen listens on the address and serves in a goroutine that shutdown
// waits for. It returns once the listener is bound, so Addr is valid.
func (s *Server) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("metrics server already started")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.log.Info("metrics server listening", zap.String("addr", ln.Addr().String()))
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", zap.Error(err))
			s.mu.Lock()
			s.serve = err
			s.mu.Unlock()
		}
	}()
	return nil
}

// Addr returns the bound address once the server is ready, else the
// configured one.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// shutdown stops accepting connections, waits for the requests in progress
// until ctx ends, and waits for the serving goroutine. It returns the
// error that stopped serving, if any. shutdown before listen does nothing.
func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// The deadline passed with requests still open: cut them.
		err = errors.Join(fmt.Errorf("shut down metrics server: %w", err), s.srv.Close())
	}
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.serve)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// zapErrorLog adapts a zap.Logger to promhttp.Logger.
type zapErrorLog struct{ log *zap.Logger }

func (l zapErrorLog) Println(v ...any) { l.log.Error(fmt.Sprint(v...)) }
