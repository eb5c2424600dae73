#!/bin/sh
# Regenerates fuzz/corpus/img/: tiny (8x6) images of every kind that
# tests/img/test_img.c knows how to write, plus truncated copies and a
# non-image. Usage: tests/img/make_fuzz_corpus.sh BUILD_DIR
set -eu
build=${1:?usage: $0 BUILD_DIR}
src=$(cd "$(dirname "$0")/../.." && pwd)
out="$src/fuzz/corpus/img"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tests/img_test_img" --write-samples "$tmp" 8
mkdir -p "$out"
for f in baseline420.jpg baseline444.jpg progressive.jpg gray.jpg cmyk.jpg exif6.jpg \
         junk_before_marker.jpg \
         exif5.jpg gray1.png gray16.png graya8.png rgba16.png pal2.png pal8.png \
         rgb8_interlaced.png; do
    cp "$tmp/$f" "$out/$f"
done
# Truncated copies: half the file, and all but the last two bytes.
for f in baseline420.jpg progressive.jpg rgb8_interlaced.png; do
    n=$(wc -c < "$tmp/$f")
    head -c $((n / 2)) "$tmp/$f" > "$out/trunc_half_$f"
    head -c $((n - 2)) "$tmp/$f" > "$out/trunc_end_$f"
done
printf 'not an image\n' > "$out/text.txt"
du -cb "$out"/* | tail -1
