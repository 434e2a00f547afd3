// Package dashboard holds the browser dashboard's files (index.html,
// app.js, style.css), embedded so that `samsa serve` serves them at / of
// its HTTP listener as the built-in console. The page imports ./samsa.js,
// the JS SDK's bundle, which the broker serves next to it (package
// samsajs in sdk/js).
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed index.html app.js style.css
var files embed.FS

// FS returns the dashboard's files, at the root of a read-only file
// system.
func FS() fs.FS { return files }
