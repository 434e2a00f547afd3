package wasm

// A minimal reader of the WebAssembly binary format: just enough of the
// import and export sections to tell, before spending time compiling, what
// a module imports and exports, so that deploy can refuse a module that is
// not a samsa filter with an error that names everything wrong at once.

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

const (
	extFunc   = 0
	extTable  = 1
	extMemory = 2
	extGlobal = 3
	extTag    = 4
)

var extNames = [...]string{"function", "table", "memory", "global", "tag"}

func extName(k byte) string {
	if int(k) < len(extNames) {
		return extNames[k]
	}
	return fmt.Sprintf("kind %d", k)
}

type wasmImport struct {
	module, name string
	kind         byte
}

type moduleShape struct {
	imports []wasmImport
	exports map[string]byte // name → kind
}

type binReader struct {
	b   []byte
	p   int
	err error
}

func (r *binReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *binReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.p >= len(r.b) {
		r.fail("unexpected end at byte %d", r.p)
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *binReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("bad LEB128 integer at byte %d", r.p)
	return 0
}

func (r *binReader) skip(n uint32) {
	if r.err != nil {
		return
	}
	if uint64(n) > uint64(len(r.b)-r.p) {
		r.fail("unexpected end at byte %d (want %d more bytes)", r.p, n)
		return
	}
	r.p += int(n)
}

func (r *binReader) name() string {
	n := r.u32()
	start := r.p
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.p])
}

func (r *binReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

var wasmMagic = []byte{0, 'a', 's', 'm'}

// readShape reads a module's imports and exports. Its errors describe
// bytes that are not a WebAssembly 1.0 binary module.
func readShape(b []byte) (*moduleShape, error) {
	if len(b) < 8 || !bytes.Equal(b[:4], wasmMagic) {
		return nil, fmt.Errorf("not a WebAssembly binary: it does not start with the magic bytes \\0asm")
	}
	if v := le.Uint32(b[4:]); v != 1 {
		return nil, fmt.Errorf("WebAssembly binary format version %d is not supported (want 1; components and text format are not accepted)", v)
	}
	r := &binReader{b: b, p: 8}
	s := &moduleShape{exports: map[string]byte{}}
	for r.p < len(b) && r.err == nil {
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			break
		}
		if uint64(size) > uint64(len(b)-r.p) {
			r.fail("section %d at byte %d claims %d bytes, only %d left", id, r.p, size, len(b)-r.p)
			break
		}
		sec := &binReader{b: b[:r.p+int(size)], p: r.p}
		switch id {
		case 2: // import
			n := sec.u32()
			for i := uint32(0); i < n && sec.err == nil; i++ {
				im := wasmImport{module: sec.name(), name: sec.name(), kind: sec.byte()}
				switch im.kind {
				case extFunc:
					sec.u32()
				case extTable:
					sec.byte()
					sec.limits()
				case extMemory:
					sec.limits()
				case extGlobal:
					sec.byte()
					sec.byte()
				case extTag:
					sec.byte()
					sec.u32()
				default:
					sec.fail("import %d has unknown kind %d", i, im.kind)
				}
				s.imports = append(s.imports, im)
			}
		case 7: // export
			n := sec.u32()
			for i := uint32(0); i < n && sec.err == nil; i++ {
				name := sec.name()
				kind := sec.byte()
				sec.u32()
				if sec.err == nil {
					s.exports[name] = kind
				}
			}
		}
		if sec.err != nil {
			r.fail("section %d: %v", id, sec.err)
		}
		r.p += int(size)
	}
	if r.err != nil {
		return nil, fmt.Errorf("malformed WebAssembly binary: %v", r.err)
	}
	return s, nil
}

// The exports the host calls, with their kinds.
var requiredExports = []struct {
	name string
	kind byte
}{
	{"memory", extMemory},
	{"samsa_abi_version", extFunc},
	{"samsa_alloc", extFunc},
	{"samsa_init", extFunc},
	{"samsa_filter", extFunc},
}

const wasiModule = "wasi_snapshot_preview1"

// check lists everything that keeps the module from being a samsa filter
// (ABI version 1) as far as its imports and exports show.
func (s *moduleShape) check() error {
	var problems []string
	var missing []string
	for _, e := range requiredExports {
		k, ok := s.exports[e.name]
		switch {
		case !ok:
			missing = append(missing, e.name)
		case k != e.kind:
			problems = append(problems, fmt.Sprintf("export %q is a %s, want a %s", e.name, extName(k), extName(e.kind)))
		}
	}
	if len(missing) > 0 {
		problems = append([]string{"missing exports: " + strings.Join(missing, ", ")}, problems...)
	}
	if _, ok := s.exports["_start"]; ok {
		problems = append(problems, "exports _start: it is a WASI command, which would run main and exit; build a reactor instead (Go: -buildmode=c-shared; TinyGo: -buildmode=c-shared; Rust: crate-type cdylib)")
	}
	if k, ok := s.exports["_initialize"]; ok && k != extFunc {
		problems = append(problems, fmt.Sprintf("export \"_initialize\" is a %s, want a function", extName(k)))
	}
	var bad []string
	for _, im := range s.imports {
		if im.module != wasiModule {
			bad = append(bad, fmt.Sprintf("%s.%s (%s)", im.module, im.name, extName(im.kind)))
		} else if im.kind != extFunc {
			bad = append(bad, fmt.Sprintf("%s.%s (%s, only functions are provided)", im.module, im.name, extName(im.kind)))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		problems = append(problems, "imports other than "+wasiModule+" functions: "+strings.Join(bad, ", "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
