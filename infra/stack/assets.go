package stack

import (
	"archive/zip"
	"fmt"
	"os"
	"path/filepath"
)

func checkAsset(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("function zip %s: %w (run `make build`, or set the assetDir context)", path, err)
	}
	if st.IsDir() || st.Size() == 0 {
		return fmt.Errorf("function zip %s: not a zip file (run `make build`)", path)
	}
	return nil
}

// WritePlaceholderAssets writes a <function>.zip holding a stand-in bootstrap for every
// function into dir, for synthesizing the stack without `make build` (tests). A stack built
// from them deploys functions that cannot run.
func WritePlaceholderAssets(dir string) error {
	for _, fn := range Functions {
		f, err := os.Create(filepath.Join(dir, Asset(fn)+".zip"))
		if err != nil {
			return err
		}
		zw := zip.NewWriter(f)
		hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
		hdr.SetMode(0o755)
		w, err := zw.CreateHeader(hdr)
		if err == nil {
			_, err = fmt.Fprintf(w, "#!/bin/sh\necho 'placeholder for %s: run make build' >&2\nexit 1\n", fn)
		}
		if err == nil {
			err = zw.Close()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
