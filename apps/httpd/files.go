package httpd

import (
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// file is one file served, read into memory by New.
type file struct {
	body []byte
	// modTime is the modification time to the second, as Last-Modified
	// carries it.
	modTime time.Time
	// fields is the response header fields that never change:
	// Content-Type, Content-Length and Last-Modified, each with its CRLF.
	fields []byte
	// lastModified is the Last-Modified field alone, for 304 responses.
	lastModified []byte
}

// indexFile is the file a path ending in "/" names.
const indexFile = "index.html"

// loadFiles reads every regular file of fsys (following symbolic links to
// files) and returns them by URL path ("/a/b.html"); an index.html is also
// found under its directory's path ("/a/"). It also returns how many files
// and bytes it read.
func loadFiles(fsys fs.FS) (files map[string]*file, n int, total int64, err error) {
	files = map[string]*file{}
	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := fs.Stat(fsys, name)
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		f := newFile(name, body, info.ModTime())
		files["/"+name] = f
		if path.Base(name) == indexFile {
			dir := path.Dir(name)
			if dir == "." {
				files["/"] = f
			} else {
				files["/"+dir+"/"] = f
			}
		}
		n++
		total += int64(len(body))
		return nil
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("httpd: loading files: %w", err)
	}
	return files, n, total, nil
}

func newFile(name string, body []byte, modTime time.Time) *file {
	f := &file{body: body, modTime: modTime.UTC().Truncate(time.Second)}
	f.lastModified = fmt.Appendf(nil, "Last-Modified: %s\r\n", f.modTime.Format(http.TimeFormat))
	f.fields = fmt.Appendf(nil, "Content-Type: %s\r\nContent-Length: %d\r\n%s",
		contentType(name), len(body), f.lastModified)
	return f
}

// contentTypes are the types of the common extensions, fixed here so that
// responses do not depend on the host's mime.types.
var contentTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".gif":  "image/gif",
	".htm":  "text/html; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".ico":  "image/vnd.microsoft.icon",
	".jpeg": "image/jpeg",
	".jpg":  "image/jpeg",
	".js":   "text/javascript; charset=utf-8",
	".json": "application/json",
	".pdf":  "application/pdf",
	".png":  "image/png",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
	".wasm": "application/wasm",
	".webp": "image/webp",
	".xml":  "text/xml; charset=utf-8",
}

// contentType returns the media type of a file by its extension: from
// contentTypes, else from the system's table, else
// application/octet-stream.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// filePath returns the key of files that a request-target names: the path
// of an origin-form or absolute-form target, percent-decoded and cleaned of
// "." and ".." segments, with its trailing "/" kept. It reports false for a
// target that names no path ("*", an authority) or decodes badly.
func filePath(target string) (string, bool) {
	if !strings.HasPrefix(target, "/") {
		// Absolute form (RFC 9112 §3.2.2): the path follows the authority.
		_, rest, ok := strings.Cut(target, "://")
		if !ok {
			return "", false
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 || rest[i] == '?' {
			return "/", true
		}
		target = rest[i:]
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	p, err := url.PathUnescape(target)
	if err != nil {
		return "", false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean, true
}
