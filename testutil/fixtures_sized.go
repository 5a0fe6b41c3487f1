package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

const (
	// sizedAccountUID and sizedFramework are what SizedReader's content
	// claims to be about.
	sizedAccountUID = "123456789012"
	sizedFramework  = "cis_5.0_aws"
	// sizedCycle is how many distinct findings SizedReader renders; the
	// stream repeats them.
	sizedCycle = 512
)

// SizedReader streams exactly size bytes of a Prowler output of the given
// format (FormatCSV, FormatHTML, FormatOCSF, FormatASFF, FormatCompliance),
// deterministic from seed, without holding more than a few hundred findings
// in memory: for 256 MiB – 1 GiB artifacts. The content is a header, findings
// repeated in a cycle, and the footer; the last record is padded with spaces
// to hit size exactly, so the stream stays valid CSV / JSON / HTML whenever
// size leaves room for the header, one record and the footer (below that it
// is the header and footer cut to size). An unknown format yields an error
// on the first Read.
func SizedReader(format string, size int64, seed int64) io.Reader {
	enc, pool, err := sizedEncoder(format, seed)
	if err != nil {
		return &errReader{err: err}
	}
	sf := newScanFixture(seed, sizedAccountUID)
	if format == FormatCompliance {
		sf = newScanFixture(subSeed(seed, sizedFramework), sizedAccountUID)
	}
	findings := make([]finding, sizedCycle)
	for i := range findings {
		findings[i] = sf.nextFrom(i, pool)
	}
	if h, ok := enc.(htmlEncoder); ok {
		for _, f := range findings {
			h.count(f)
		}
		enc = h
	}
	r := &sizedReader{size: size, header: enc.header(), footer: enc.footer()}
	sep := enc.separator()
	r.first = enc.record(&findings[0])
	r.records = make([][]byte, len(findings))
	for i := range findings {
		r.records[i] = append(append([]byte(nil), sep...), enc.record(&findings[i])...)
	}
	r.pending = r.header
	return r
}

func sizedEncoder(format string, seed int64) (recordEncoder, []*checkDef, error) {
	switch format {
	case FormatCSV:
		return csvEncoder{}, nil, nil
	case FormatOCSF:
		return ocsfEncoder{}, nil, nil
	case FormatASFF:
		return asffEncoder{}, nil, nil
	case FormatHTML:
		sf := newScanFixture(seed, sizedAccountUID)
		return htmlEncoder{account: sf.account, assessed: sf.start.Format("2006-01-02 15:04:05")}, nil, nil
	case FormatCompliance:
		enc, pool := complianceSetup(sizedFramework)
		return enc, pool, nil
	}
	return nil, nil, fmt.Errorf("sized fixture: unknown format %q", format)
}

// sizedReader emits header, records and footer, deciding each piece only
// when it knows whether the next one still fits.
type sizedReader struct {
	size           int64
	header, footer []byte
	first          []byte   // record 0 without separator
	records        [][]byte // records with their leading separator
	emitted        int64    // bytes handed to buf so far
	pending        []byte   // the piece after buf, not yet committed
	n              int      // records committed or pending
	buf            []byte   // bytes ready for Read
	done           bool
}

func (r *sizedReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		r.plan()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// plan moves the pending piece to buf, or finishes the stream with it.
func (r *sizedReader) plan() {
	budget := r.size - int64(len(r.footer)) // room for everything but the footer
	var next []byte
	if r.n == 0 {
		next = r.first
	} else {
		next = r.records[r.n%len(r.records)]
	}
	if r.emitted+int64(len(r.pending))+int64(len(next)) <= budget {
		r.buf, r.pending = r.pending, next
		r.emitted += int64(len(r.buf))
		r.n++
		return
	}
	r.done = true
	room := budget - r.emitted
	if int64(len(r.pending)) <= room {
		last := padBeforeNewline(r.pending, int(room)-len(r.pending))
		r.buf = append(last, r.footer...)
		return
	}
	// Not even the header fits with the footer: cut them to size.
	whole := append(append([]byte(nil), r.pending...), r.footer...)
	r.buf = whole[:max(0, r.size-r.emitted)]
}

// padBeforeNewline returns a copy of b with n spaces inserted before its
// trailing line break (CRLF or LF), or appended if it has none: inside the
// last CSV field, or as whitespace between JSON tokens or HTML tags.
func padBeforeNewline(b []byte, n int) []byte {
	cut := len(b)
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		cut -= 2
	case bytes.HasSuffix(b, []byte("\n")):
		cut--
	}
	out := make([]byte, 0, len(b)+n)
	out = append(out, b[:cut]...)
	out = append(out, bytes.Repeat([]byte(" "), n)...)
	return append(out, b[cut:]...)
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// SizedSHA256 is the hex SHA-256 of SizedReader(format, size, seed),
// computed by streaming it.
func SizedSHA256(format string, size, seed int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, SizedReader(format, size, seed)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
