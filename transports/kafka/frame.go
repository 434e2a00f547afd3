package kafka

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	produceKey = 0
	// maxNonProduceBytes bounds requests other than Produce.
	maxNonProduceBytes = 8 << 20
)

// requestHeader is the Kafka request header: v1, or v2 (with tagged fields)
// for flexible request versions.
type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      *string
}

// request is one decoded request frame.
type request struct {
	hdr requestHeader
	// kreq is the request of this key, decoded when supported is true;
	// nil when kmsg does not know the key.
	kreq kmsg.Request
	// api is the handler of this key, nil when samsa does not implement it.
	api *apiSpec
	// supported: api != nil and the version is within its range.
	supported bool
	body      []byte
}

// decodeRequest decodes a frame (without its size prefix): the header, and
// the body when samsa implements the key at that version. An error means the
// frame is malformed and the connection must be closed.
func decodeRequest(frame []byte) (*request, error) {
	if len(frame) < 8 {
		return nil, protoErrorf("request of %d bytes is shorter than a request header", len(frame))
	}
	r := &request{hdr: requestHeader{
		key:           int16(binary.BigEndian.Uint16(frame[0:])),
		version:       int16(binary.BigEndian.Uint16(frame[2:])),
		correlationID: int32(binary.BigEndian.Uint32(frame[4:])),
	}}
	rest := frame[8:]
	if r.hdr.key != produceKey && len(frame) > maxNonProduceBytes {
		// Only produce carries bulk data; bounding the rest bounds what
		// decoding arrays of structs can allocate.
		return nil, protoErrorf("%s request of %d bytes exceeds %d bytes", keyName(r.hdr.key), len(frame), maxNonProduceBytes)
	}
	if r.hdr.version < 0 {
		return nil, protoErrorf("request %s has negative version %d", keyName(r.hdr.key), r.hdr.version)
	}
	// ControlledShutdown v0 is the one request without a client id.
	if !(r.hdr.key == 7 && r.hdr.version == 0) {
		if len(rest) < 2 {
			return nil, protoErrorf("request header truncated before the client id")
		}
		n := int16(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		switch {
		case n == -1:
		case n < -1 || int(n) > len(rest):
			return nil, protoErrorf("request header has a client id of invalid length %d", n)
		default:
			id := string(rest[:n])
			r.hdr.clientID = &id
			rest = rest[n:]
		}
	}
	r.kreq = kmsg.RequestForKey(r.hdr.key)
	if r.kreq == nil {
		// Unknown to the codec: we cannot even tell the header version.
		r.body = rest
		return r, nil
	}
	r.api = apis[r.hdr.key]
	r.supported = r.api != nil && r.hdr.version >= r.api.min && r.hdr.version <= r.api.max

	// Versions beyond what kmsg knows are newer, so flexible if the
	// newest known one is.
	r.kreq.SetVersion(min(r.hdr.version, r.kreq.MaxVersion()))
	if r.kreq.IsFlexible() {
		var err error
		rest, err = skipTags(rest)
		if err != nil {
			if !r.supported {
				// We will not read the body of an unsupported version;
				// answer its error rather than closing.
				r.body = nil
				return r, nil
			}
			return nil, protoErrorf("request header of %s v%d: %v", keyName(r.hdr.key), r.hdr.version, err)
		}
	}
	r.body = rest
	r.kreq.SetVersion(r.hdr.version)
	if !r.supported {
		return r, nil
	}
	if err := r.kreq.ReadFrom(rest); err != nil {
		return nil, protoErrorf("undecodable %s v%d request: %v", keyName(r.hdr.key), r.hdr.version, err)
	}
	return r, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; i++ {
		if _, b, err = uvarint(b); err != nil { // tag
			return nil, err
		}
		var size uint64
		if size, b, err = uvarint(b); err != nil {
			return nil, err
		}
		if size > uint64(len(b)) {
			return nil, fmt.Errorf("tagged field of %d bytes overflows the request", size)
		}
		b = b[size:]
	}
	return b, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v > 1<<31 {
		return 0, nil, fmt.Errorf("bad tagged field varint")
	}
	return v, b[n:], nil
}

func keyName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return fmt.Sprintf("ApiKey(%d)", key)
}

// encodeResponse frames a response: size, correlation id, the empty tag
// section of flexible response headers (never for ApiVersions), body.
func encodeResponse(correlationID int32, resp kmsg.Response) []byte {
	buf := make([]byte, 8, 256+recordBytes(resp))
	binary.BigEndian.PutUint32(buf[4:], uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// recordBytes is how many bytes of record batches a response carries, so
// that the encoding buffer is sized once and the batches are copied once.
func recordBytes(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 0
	for i := range fr.Topics {
		for j := range fr.Topics[i].Partitions {
			n += len(fr.Topics[i].Partitions[j].RecordBatches) + 64
		}
	}
	return n
}

// errorResponse returns the response of kreq's key at the request's version
// (clamped to what kmsg can encode) with every ErrorCode field it holds set
// to code. ok is false when the response has no top-level error code.
func errorResponse(kreq kmsg.Request, version int16, code int16) (resp kmsg.Response, ok bool) {
	resp = kreq.ResponseKind()
	resp.SetVersion(min(version, resp.MaxVersion()))
	ok = setErrorCodes(reflect.ValueOf(resp), code)
	return resp, ok
}

// setErrorCodes sets every int16 field named ErrorCode in v, recursing into
// structs, pointers and slices. It reports whether v itself (not a nested
// element) has an ErrorCode.
func setErrorCodes(v reflect.Value, code int16) bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		return setErrorCodes(v.Elem(), code)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			setErrorCodes(v.Index(i), code)
		}
		return false
	case reflect.Struct:
		top := false
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !f.CanSet() {
				continue
			}
			if v.Type().Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				f.SetInt(int64(code))
				top = true
				continue
			}
			switch f.Kind() {
			case reflect.Struct, reflect.Slice, reflect.Pointer:
				setErrorCodes(f, code)
			}
		}
		return top
	}
	return false
}

// handleFrame decodes one frame and answers it (inline or off the read
// path), queueing its response slot in request order.
func (c *conn) handleFrame(frame []byte) error {
	r, err := decodeRequest(frame)
	if err != nil {
		return err
	}
	h := r.hdr
	if authOnlyKey(h.key) && !c.s.authOn() {
		// Without auth these APIs do not exist, as before auth did.
		r.api, r.supported = nil, false
	}
	if r.kreq != nil && !preAuthKey(h.key) && !c.authenticated() {
		// Kafka closes such connections too: the client is
		// misconfigured (no SASL), and an error response would tell an
		// anonymous client more than it needs to know.
		return protoErrorf("%s request before SASL authentication (client id %q)", keyName(h.key), strOrEmpty(h.clientID))
	}
	switch {
	case r.kreq == nil:
		return protoErrorf("unknown api key %d (v%d, correlation id %d)", h.key, h.version, h.correlationID)
	case r.supported:
	case h.key == apiVersionsKey:
		// Clients retry with the highest version they find in a v0
		// body carrying UNSUPPORTED_VERSION.
		resp := apiVersionsResponse(0, kerr.UnsupportedVersion.Code, c.s.authOn())
		return c.respondNow(h.correlationID, resp)
	case r.api != nil:
		// A version we do not implement of an API we do: an error
		// response, never a dropped connection.
		resp, _ := errorResponse(r.kreq, h.version, kerr.UnsupportedVersion.Code)
		c.s.log.Debug("unsupported api version", "remote", c.remote, "api", keyName(h.key), "version", h.version)
		return c.respondNow(h.correlationID, resp)
	default:
		// An API we do not implement (and do not advertise).
		resp, ok := errorResponse(r.kreq, h.version, kerr.UnsupportedVersion.Code)
		if !ok {
			return protoErrorf("unsupported api %s v%d has no error code to answer with", keyName(h.key), h.version)
		}
		c.s.log.Debug("unsupported api", "remote", c.remote, "api", keyName(h.key), "version", h.version)
		return c.respondNow(h.correlationID, resp)
	}

	f, err := c.enqueue()
	if err != nil {
		return err
	}
	c.clientID = ""
	if h.clientID != nil {
		c.clientID = *h.clientID
	}
	rep := r.api.handle(c, r.kreq)
	if rep.closeAfter != "" {
		// Handlers that close answer inline.
		if rep.resp != nil {
			f.frame = encodeResponse(h.correlationID, rep.resp)
		}
		close(f.done)
		return &closeError{msg: rep.closeAfter}
	}
	switch {
	case rep.later != nil:
		c.async.Add(1)
		go func() {
			defer c.async.Done()
			if resp := rep.later(c.ctx); resp != nil {
				f.frame = encodeResponse(h.correlationID, resp)
			}
			if rep.encoded != nil {
				rep.encoded()
			}
			close(f.done)
		}()
	case rep.resp != nil:
		f.frame = encodeResponse(h.correlationID, rep.resp)
		close(f.done)
	default:
		close(f.done) // nothing to send
	}
	return nil
}

func (c *conn) respondNow(correlationID int32, resp kmsg.Response) error {
	f, err := c.enqueue()
	if err != nil {
		return err
	}
	f.frame = encodeResponse(correlationID, resp)
	close(f.done)
	return nil
}
