// Package samsajs gives Go programs the JS SDK's browser bundle
// (dist/samsa.js, built by `npm run build` and committed), so that `samsa
// serve` can serve it next to the console without node installed.
package samsajs

import (
	"embed"
	"io/fs"
)

// BundleName is the bundle's file name in FS.
const BundleName = "samsa.js"

//go:embed dist/samsa.js
var dist embed.FS

// FS returns a read-only file system holding the bundle as BundleName.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only on an invalid directory name; "dist" is valid.
		panic(err)
	}
	return sub
}

// Bundle returns a copy of the bundle's bytes: one minified ES module
// that exports the SDK (Client, connect, ...).
func Bundle() []byte {
	b, err := dist.ReadFile("dist/" + BundleName)
	if err != nil {
		panic(err) // embedded at build time: it is there
	}
	return b
}
