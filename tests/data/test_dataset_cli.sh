#!/usr/bin/env bash
# kennel dataset synth and check, through the real binary:
#  - synth writes train/valid/test with the classes and counts asked for,
#    a README saying it is synthetic, and the same bytes for the same seed;
#  - check prints the per-class table and exits 0 on a clean data set;
#  - a corrupted file makes check exit 1 and list its path with a reason;
#  - a flat layout is split by --seed/--split and says so;
#  - usage errors exit 2, --help exits 0, working failures exit 1.
set -u
. "$(dirname "$0")/../kn_testlib.sh"

"$kennel" dataset synth "$tmp/syn" --classes 3 --per-class 8 --seed 2 > "$tmp/synth.out"
check "synth exit 0" test $? -eq 0
check "synth says what it wrote" grep -q "3 classes" "$tmp/synth.out"
check "README" grep -q "kennel dataset synth" "$tmp/syn/README.txt"
check "README seed" grep -q "seed 2" "$tmp/syn/README.txt"
check "class folders" test "$(ls "$tmp/syn/train" | tr '\n' ' ')" = "01.red_circle 02.green_square 03.blue_triangle "
check "train count" test "$(ls "$tmp/syn/train/02.green_square" | wc -l)" -eq 8
check "valid count" test "$(ls "$tmp/syn/valid/02.green_square" | wc -l)" -eq 2
check "test count" test "$(ls "$tmp/syn/test/03.blue_triangle" | wc -l)" -eq 2
check "jpeg and png" test "$(ls "$tmp/syn/train"/*/*.jpg | wc -l)" -eq 12 -a "$(ls "$tmp/syn/train"/*/*.png | wc -l)" -eq 12
check "JPEG magic" test "$(head -c 3 "$tmp/syn/train/01.red_circle/train_0001.jpg" | od -An -tx1 | tr -d ' ')" = "ffd8ff"
check "PNG magic" test "$(head -c 4 "$tmp/syn/train/01.red_circle/train_0002.png" | od -An -tx1 | tr -d ' ')" = "89504e47"

"$kennel" dataset synth "$tmp/same" --classes 3 --per-class 8 --seed 2 > /dev/null
check "same seed, same files" diff -r "$tmp/syn" "$tmp/same"
"$kennel" dataset synth "$tmp/other" --classes 3 --per-class 8 --seed 3 > /dev/null
check "other seed, other files" bash -c "! cmp -s '$tmp/syn/train/01.red_circle/train_0001.jpg' '$tmp/other/train/01.red_circle/train_0001.jpg'"

"$kennel" dataset check "$tmp/syn" > "$tmp/check.out" 2> "$tmp/check.err"
check "check clean exit 0" test $? -eq 0
check "check header" grep -q "^split  class                  images  unreadable$" "$tmp/check.out"
check "check class row" grep -Eq "^train  02\.green_square +8 +0$" "$tmp/check.out"
check "check total row" grep -Eq "^all    \(total\) +36 +0$" "$tmp/check.out"
check "check nothing unreadable" bash -c "! grep -q unreadable: '$tmp/check.out'"

# corrupt one file: cut a JPEG short; add a text file named like a PNG
bad="$tmp/syn/valid/03.blue_triangle/valid_0001.jpg"
head -c 300 "$bad" > "$tmp/cut" && mv "$tmp/cut" "$bad"
echo "not an image" > "$tmp/syn/train/01.red_circle/zz_notes.png"
"$kennel" dataset check "$tmp/syn" > "$tmp/check2.out" 2> "$tmp/check2.err"
check "check corrupt exit 1" test $? -eq 1
check "corrupt path listed" grep -q "^unreadable: $bad: " "$tmp/check2.out"
check "text file listed" grep -q "^unreadable: $tmp/syn/train/01.red_circle/zz_notes.png: " "$tmp/check2.out"
check "corrupt row" grep -Eq "^valid  03\.blue_triangle +2 +1$" "$tmp/check2.out"
check "corrupt total" grep -Eq "^all    \(total\) +37 +2$" "$tmp/check2.out"
check "stderr count" grep -q "2 unreadable files" "$tmp/check2.err"

# a flat layout, split by seed
mkdir "$tmp/flat"
cp -r "$tmp/same/train/"* "$tmp/flat/"
"$kennel" dataset check "$tmp/flat" --seed 5 --split 0.5,0.25,0.25 > "$tmp/flat.out"
check "flat exit 0" test $? -eq 0
check "flat split said" grep -q "split: generated with seed 5, ratios train 0.5, valid 0.25, test 0.25" "$tmp/flat.out"
check "flat train row" grep -Eq "^train  01\.red_circle +4 +0$" "$tmp/flat.out"
check "flat valid row" grep -Eq "^valid  01\.red_circle +2 +0$" "$tmp/flat.out"
"$kennel" dataset check "$tmp/flat" --seed 5 --split 0.5,0.25,0.25 > "$tmp/flat2.out"
check "flat deterministic" cmp -s "$tmp/flat.out" "$tmp/flat2.out"

# usage and working errors
code() { "$@" > /dev/null 2>&1; echo $?; }
check "no args" test "$(code "$kennel" dataset)" -eq 2
check "unknown sub" test "$(code "$kennel" dataset frobnicate x)" -eq 2
check "check without DIR" test "$(code "$kennel" dataset check)" -eq 2
check "check two DIRs" test "$(code "$kennel" dataset check "$tmp/syn" "$tmp/same")" -eq 2
check "bad --split" test "$(code "$kennel" dataset check "$tmp/flat" --split 0.5,0.5)" -eq 2
check "ratios not summing to 1" test "$(code "$kennel" dataset check "$tmp/flat" --split 0.5,0.5,0.5)" -eq 2
check "bad --seed" test "$(code "$kennel" dataset check "$tmp/flat" --seed x)" -eq 2
check "unknown option" test "$(code "$kennel" dataset check "$tmp/flat" --frob)" -eq 2
check "bad --classes" test "$(code "$kennel" dataset synth "$tmp/x" --classes 0)" -eq 2
check "bad --per-class" test "$(code "$kennel" dataset synth "$tmp/x" --per-class -3)" -eq 2
check "--help" test "$(code "$kennel" dataset --help)" -eq 0
check "check --help" test "$(code "$kennel" dataset check --help)" -eq 0
check "help dataset" test "$(code "$kennel" help dataset)" -eq 0
"$kennel" dataset --help | grep -q "synth DIR" ; check "help text" test $? -eq 0
check "synth into non-empty" test "$(code "$kennel" dataset synth "$tmp/syn")" -eq 1
"$kennel" dataset check "$tmp/missing" > /dev/null 2> "$tmp/missing.err"
check "missing dir exit 1" test $? -eq 1
check "missing dir named" grep -q "$tmp/missing" "$tmp/missing.err"
mkdir -p "$tmp/mism/train/a" "$tmp/mism/valid/b"
cp "$tmp/same/train/01.red_circle/train_0001.jpg" "$tmp/mism/train/a/"
"$kennel" dataset check "$tmp/mism" > /dev/null 2> "$tmp/mism.err"
check "mismatch exit 1" test $? -eq 1
check "mismatch named" grep -q "$tmp/mism/valid/b" "$tmp/mism.err"

kn_done
