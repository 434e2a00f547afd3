package record

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Maximum expansion ratios of the stream codecs, used to bound size hints
// taken from untrusted headers (deflate tops out near 1032:1, LZ4 near
// 255:1).
const (
	gzipMaxRatio = 1032
	lz4MaxRatio  = 255
)

// zstdMaxWindow bounds the history window a zstd frame may ask the decoder
// to keep. Kafka producers use far smaller windows.
const zstdMaxWindow = 64 << 20

func tooLarge(c Codec, limit int) error {
	return fmt.Errorf("%w: %s records inflate beyond %d bytes", ErrTooLarge, c, limit)
}

func corruptCodec(c Codec, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
}

// decompress inflates src compressed with c, returning at most limit bytes
// or ErrTooLarge.
func decompress(c Codec, src []byte, limit int) ([]byte, error) {
	switch c {
	case Gzip:
		return gunzip(src, limit)
	case Snappy:
		return unsnappy(src, limit)
	case LZ4:
		return unlz4(src, limit)
	case Zstd:
		return unzstd(src, limit)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, c)
}

// readLimited reads r to EOF into a new buffer, starting with hint bytes of
// capacity, and fails with ErrTooLarge once more than limit bytes come out.
func readLimited(c Codec, r io.Reader, limit, hint int) ([]byte, error) {
	hint = max(hint, 512)
	hint = min(hint, limit+1) // +1: see EOF without growing when the hint is exact
	buf := make([]byte, 0, hint)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit+1-len(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, tooLarge(c, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, corruptCodec(c, err)
		}
	}
}

// ---- gzip ----

type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

var gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}

func gunzip(src []byte, limit int) ([]byte, error) {
	g := gzipReaders.Get().(*gzipReader)
	defer func() {
		g.src.Reset(nil)
		gzipReaders.Put(g)
	}()
	g.src.Reset(src)
	if err := g.zr.Reset(&g.src); err != nil {
		return nil, corruptCodec(Gzip, err)
	}
	// ISIZE, the last four bytes, is the size mod 2^32 of the last member:
	// a good hint, bounded because it is not trusted.
	hint := 4 * len(src)
	if len(src) >= 18 {
		hint = int(binary.LittleEndian.Uint32(src[len(src)-4:])) + 1
	}
	hint = min(hint, gzipMaxRatio*len(src)+64)
	return readLimited(Gzip, &g.zr, limit, hint)
}

// ---- snappy ----

// xerialMagic starts a snappy-java (xerial) framed stream. It is followed by
// two big-endian int32s (version, compatible version) and then blocks, each
// a big-endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = len("\x82SNAPPY\x00") + 8

func unsnappy(src []byte, limit int) ([]byte, error) {
	if len(src) >= xerialHeaderSize && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		return unxerial(src[xerialHeaderSize:], limit)
	}
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, corruptCodec(Snappy, err)
	}
	if n > limit {
		return nil, tooLarge(Snappy, limit)
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return nil, corruptCodec(Snappy, err)
	}
	return out, nil
}

// unxerial decodes the blocks of a xerial stream, after its header. A first
// pass sums the blocks' decoded lengths, so that the limit is enforced and
// the output allocated once before anything is inflated.
func unxerial(src []byte, limit int) ([]byte, error) {
	total := 0
	for rest := src; len(rest) > 0; {
		blk, next, err := xerialBlock(rest)
		if err != nil {
			return nil, err
		}
		n, err := s2.DecodedLen(blk)
		if err != nil {
			return nil, corruptCodec(Snappy, err)
		}
		if total += n; total > limit {
			return nil, tooLarge(Snappy, limit)
		}
		rest = next
	}
	out := make([]byte, total)
	at := 0
	for rest := src; len(rest) > 0; {
		blk, next, _ := xerialBlock(rest)
		n, _ := s2.DecodedLen(blk)
		if _, err := s2.Decode(out[at:at+n], blk); err != nil {
			return nil, corruptCodec(Snappy, err)
		}
		at += n
		rest = next
	}
	return out, nil
}

func xerialBlock(b []byte) (blk, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, corruptCodec(Snappy, errors.New("xerial: truncated block length"))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n == 0 || uint64(n) > uint64(len(b)) {
		return nil, nil, corruptCodec(Snappy, fmt.Errorf("xerial: block length %d with %d bytes left", n, len(b)))
	}
	return b[:n], b[n:], nil
}

// ---- lz4 ----

var lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

func unlz4(src []byte, limit int) ([]byte, error) {
	zr := lz4Readers.Get().(*lz4.Reader)
	defer func() {
		zr.Reset(nil)
		lz4Readers.Put(zr)
	}()
	zr.Reset(bytes.NewReader(src))
	return readLimited(LZ4, zr, limit, min(4*len(src), lz4MaxRatio*len(src)+64))
}

// ---- zstd ----

var (
	// zstdAll decodes frames that declare their content size in one call
	// (DecodeAll is safe for concurrent use). It never writes past the
	// capacity it is given.
	zstdAll = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			panic(err)
		}
		return d
	})
	// zstdStreams are synchronous streaming decoders (concurrency 1 runs no
	// goroutines), for frames that do not declare their size.
	zstdStreams = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			panic(err)
		}
		return d
	}}
)

func unzstd(src []byte, limit int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, corruptCodec(Zstd, err)
	}
	if h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return nil, tooLarge(Zstd, limit)
		}
		// Exact size known: one call, one allocation. More frames may
		// follow the first; if they do not fit, fall back to streaming.
		out, err := zstdAll().DecodeAll(src, make([]byte, 0, h.FrameContentSize))
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, corruptCodec(Zstd, err)
		}
	}
	d := zstdStreams.Get().(*zstd.Decoder)
	defer func() {
		_ = d.Reset(nil)
		zstdStreams.Put(d)
	}()
	if err := d.Reset(bytes.NewReader(src)); err != nil {
		return nil, corruptCodec(Zstd, err)
	}
	return readLimited(Zstd, d, limit, 4*len(src))
}

// ---- compression ----

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

var lz4Writers = sync.Pool{New: func() any {
	w := lz4.NewWriter(nil)
	// 64 KiB blocks, as the Java client writes them: small buffers.
	if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
		panic(err)
	}
	return w
}}

// zstdEnc is shared: EncodeAll is safe for concurrent use.
var zstdEnc = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		panic(err)
	}
	return e
})

// compress appends src compressed with c to dst.
func compress(dst []byte, c Codec, src []byte) ([]byte, error) {
	switch c {
	case Gzip:
		zw := gzipWriters.Get().(*gzip.Writer)
		w := appendWriter{b: dst}
		zw.Reset(&w)
		_, err := zw.Write(src)
		if err == nil {
			err = zw.Close()
		}
		zw.Reset(nil)
		gzipWriters.Put(zw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, c, err)
		}
		return w.b, nil
	case Snappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return nil, fmt.Errorf("%w: %d bytes are too many for snappy", ErrInvalid, len(src))
		}
		dst = slices.Grow(dst, n)
		out := s2.EncodeSnappy(dst[len(dst):], src)
		return dst[:len(dst)+len(out)], nil
	case LZ4:
		zw := lz4Writers.Get().(*lz4.Writer)
		w := appendWriter{b: dst}
		zw.Reset(&w)
		_, err := zw.Write(src)
		if err == nil {
			err = zw.Close()
		}
		zw.Reset(nil)
		lz4Writers.Put(zw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, c, err)
		}
		return w.b, nil
	case Zstd:
		return zstdEnc().EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, c)
}
