#!/bin/sh
# A pybundle self-installing bundle: this POSIX sh script is followed by a zip archive (the
# bundle: Python interpreters, a signed manifest, and the installer for them).
#   sh FILE --help                          what it is, how to check it first, what runs when
#   sh FILE install --trusted-key KEY.pub   install its interpreters on this Linux host
# Nothing below the line "exit $?" is shell: it is the zip (unzip -l FILE lists it).
# Tools used: uname, tail, head, sha256sum, mkdir, rm, gzip, tar (mktemp when present).
pb_file_size=@FILE_SIZE@
pb_tail_size=@TAIL_SIZE@
pb_tail_sha=@TAIL_SHA@
pb_empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
pb_launcher='@LAUNCHER@'
pb_self=$0
pb_tmp=
pb_skip='--exclude=*/lib/python3.*/test --exclude=*/lib/python3.*/config-3.* --exclude=*/lib/python3.*/site-packages/* --exclude=*/lib/python3.*/idlelib --exclude=*/lib/python3.*/tkinter --exclude=*/lib/python3.*/turtledemo --exclude=*/include/python3.*'

pb_help() {
@HELP@
}

pb_err() {
	printf 'pybundle: error: %s\n' "$1" >&2
}

pb_die() {
	pb_err "$2"
	exit "$1"
}

pb_cleanup() {
	if [ -n "$pb_tmp" ]; then
		rm -rf "$pb_tmp"
		pb_tmp=
	fi
}

trap 'pb_cleanup' EXIT
trap 'pb_cleanup; trap - EXIT; exit 130' INT
trap 'pb_cleanup; trap - EXIT; exit 143' TERM
trap 'pb_cleanup; trap - EXIT; exit 129' HUP

# the sha256 of standard input, hex
pb_sum() {
	set -- $(sha256sum)
	printf '%s' "${1-}"
}

# the file is exactly as long as when it was made, and its zip directory is intact
pb_check_file() {
	if [ "$(tail -c +"$pb_file_size" "$pb_file" 2>/dev/null | head -c 1 | pb_sum)" = "$pb_empty" ]; then
		case $pb_file in
		*.[0-9][0-9][0-9])
			pb_die 5 "$pb_file is one volume of a set (the file is $pb_file_size bytes long): sh reads one file, so join the volumes first: cat ${pb_file%.*}.0* > ${pb_file%.*} && sh ${pb_file%.*} $pb_cmd ..."
			;;
		esac
		pb_die 5 "$pb_file is truncated: it should be $pb_file_size bytes long; copy it again"
	fi
	if [ "$(tail -c +"$((pb_file_size + 1))" "$pb_file" | head -c 1 | pb_sum)" != "$pb_empty" ]; then
		pb_die 5 "$pb_file has data after its end (it should be $pb_file_size bytes long): it was modified after it was made"
	fi
	if [ "$(tail -c "$pb_tail_size" "$pb_file" | pb_sum)" != "$pb_tail_sha" ]; then
		pb_die 5 "$pb_file was modified after it was made: its zip directory does not match the sha256 written in it"
	fi
}

# this host's platform key, as the bundle's manifest spells it: linux-<arch>-<libc>
pb_host() {
	pb_os=$(uname -s 2>/dev/null)
	pb_m=$(uname -m 2>/dev/null)
	case $pb_os in
	Linux) ;;
	*) pb_die 7 "$pb_file installs on Linux only (this host runs ${pb_os:-an unknown system}); it has interpreters for: @KEYS@" ;;
	esac
	case $pb_m in
	x86_64 | amd64) pb_arch=x86_64 ;;
	aarch64 | arm64) pb_arch=aarch64 ;;
	armv7* | armv8l) pb_arch=armv7 ;;
	i386 | i486 | i586 | i686 | x86) pb_arch=i686 ;;
	ppc64le) pb_arch=powerpc64le ;;
	*) pb_arch=$pb_m ;;
	esac
	pb_glibc=
	pb_musl=
	for pb_f in /lib/ld-linux*.so.* /lib64/ld-linux*.so.* /lib/ld64.so.* /lib64/ld64.so.*; do
		[ -e "$pb_f" ] && pb_glibc=1
	done
	for pb_f in /lib/ld-musl-*.so.1; do
		[ -e "$pb_f" ] && pb_musl=1
	done
	pb_gnu=gnu
	if [ "$pb_arch" = armv7 ]; then
		if [ -e /lib/ld-linux-armhf.so.3 ]; then pb_gnu=gnueabihf; else pb_gnu=gnueabi; fi
	fi
	if [ -n "$pb_musl" ] && [ -z "$pb_glibc" ]; then
		pb_key=linux-$pb_arch-musl
	else
		pb_key=linux-$pb_arch-$pb_gnu
	fi
	if ! pb_pick "$pb_key" && [ -n "$pb_musl" ] && [ -n "$pb_glibc" ]; then
		pb_key=linux-$pb_arch-musl
	fi
	pb_pick "$pb_key" || pb_die 7 "$pb_file holds no interpreter for this host ($pb_key); it has: @KEYS@"
}

# the bootstrap of a platform key: the interpreter archive (offset, size, sha256 in this file)
# and the wheels that run on it (member=sha256)
pb_pick() {
	case $1 in
@CASES@
	*) return 1 ;;
	esac
	return 0
}

# where the interpreters will be installed (the same arguments as pybundle install)
pb_install_dir() {
	pb_dest=
	while [ $# -gt 0 ]; do
		case $1 in
		--install-dir)
			pb_dest=${2-}
			[ $# -gt 1 ] && shift
			;;
		--prefix)
			pb_dest=${2-}
			pb_dest=${pb_dest%/}
			pb_dest=${pb_dest%/*}
			[ $# -gt 1 ] && shift
			;;
		--install-dir=*) pb_dest=${1#*=} ;;
		--prefix=*)
			pb_dest=${1#*=}
			pb_dest=${pb_dest%/}
			pb_dest=${pb_dest%/*}
			;;
		esac
		shift
	done
	if [ -z "$pb_dest" ]; then
		if [ -n "${PYBUNDLE_INSTALL_DIR-}" ]; then
			pb_dest=$PYBUNDLE_INSTALL_DIR
		elif [ -n "${XDG_DATA_HOME-}" ]; then
			pb_dest=$XDG_DATA_HOME/pybundle/python
		elif [ -n "${HOME-}" ]; then
			pb_dest=$HOME/.local/share/pybundle/python
		fi
	fi
}

# a new private directory (mode 0700) in $1, in pb_tmp
pb_private() {
	pb_tmp=
	[ -d "$1" ] || return 1
	if command -v mktemp >/dev/null 2>&1; then
		pb_tmp=$(mktemp -d "$1/pybundle-self.XXXXXXXX" 2>/dev/null) || pb_tmp=
	fi
	if [ -z "$pb_tmp" ]; then
		pb_n=0
		while [ "$pb_n" -lt 20 ]; do
			if mkdir -m 700 "$1/pybundle-self.$$.$pb_n" 2>/dev/null; then
				pb_tmp=$1/pybundle-self.$$.$pb_n
				break
			fi
			pb_n=$((pb_n + 1))
		done
	fi
	[ -n "$pb_tmp" ]
}

# unpack the bootstrap into a private directory of $1 and prove it runs there:
# 0 ready, 1 no directory can be made there, 3 the interpreter cannot run there (pb_why)
pb_unpack() {
	pb_private "$1" || return 1
	if ! tail -c +"$((pb_off + 1))" "$pb_file" 2>/dev/null | head -c "$pb_size" >"$pb_tmp/bootstrap.tar.gz" 2>/dev/null; then
		pb_die 9 "not enough space in $1 for the bootstrap interpreter (it needs about $pb_need MB there); set TMPDIR to a directory with room"
	fi
	if [ "$(pb_sum <"$pb_tmp/bootstrap.tar.gz")" != "$pb_sha" ]; then
		pb_die 5 "$pb_file: the bootstrap interpreter $pb_member does not match the sha256 written in this file: the file was modified or damaged after it was made"
	fi
	# what pybundle never uses is left in the archive where tar can skip it (GNU tar; a tar
	# without --exclude, such as busybox's, refuses the option and unpacks everything)
	set -f
	if ! mkdir "$pb_tmp/python" || ! gzip -dc <"$pb_tmp/bootstrap.tar.gz" 2>/dev/null | tar -xof - -C "$pb_tmp/python" $pb_skip 2>/dev/null; then
		rm -rf "$pb_tmp/python"
		if ! mkdir "$pb_tmp/python" || ! gzip -dc <"$pb_tmp/bootstrap.tar.gz" 2>/dev/null | tar -xof - -C "$pb_tmp/python" 2>/dev/null; then
			set +f
			pb_die 9 "not enough space in $1 for the bootstrap interpreter (it needs about $pb_need MB there); set TMPDIR to a directory with room"
		fi
	fi
	set +f
	rm -f "$pb_tmp/bootstrap.tar.gz"
	pb_root=$pb_tmp/python/$pb_strip
	pb_py=$pb_root/$pb_exe
	if pb_why=$(LD_LIBRARY_PATH=$pb_root/lib "$pb_py" -I -S -c '' 2>&1 >/dev/null); then
		return 0
	fi
	pb_why=$(printf '%s\n' "${pb_why:-it does not start}" | head -n 1)
	pb_cleanup
	return 3
}

pb_main() {
	case ${1-} in
	-h | --help | help)
		pb_help
		exit 0
		;;
	'')
		pb_help >&2
		pb_die 2 "missing command: sh $pb_self install|verify|inspect ..."
		;;
	install | verify | inspect) pb_cmd=$1 ;;
	*) pb_die 2 "unknown command '$1': this file runs install, verify or inspect (see: sh $pb_self --help)" ;;
	esac
	shift
	case $pb_self in
	/*) pb_file=$pb_self ;;
	*) pb_file=$(pwd)/$pb_self ;;
	esac
	if [ ! -f "$pb_file" ] || [ ! -r "$pb_file" ]; then
		pb_die 2 "cannot read this script's own file ($pb_self): run it as sh FILE $pb_cmd ..."
	fi
	pb_check_file
	pb_host
	pb_install_dir "$@"
	pb_tried=
	pb_ready=
	for pb_base in "${TMPDIR:-/tmp}" "$pb_dest"; do
		[ -n "$pb_base" ] || continue
		if [ "$pb_base" = "$pb_dest" ]; then
			mkdir -p "$pb_base" 2>/dev/null
		fi
		pb_unpack "$pb_base"
		case $? in
		0)
			pb_ready=1
			break
			;;
		1) pb_tried="$pb_tried${pb_tried:+; }$pb_base (cannot create a directory there)" ;;
		*) pb_tried="$pb_tried${pb_tried:+; }$pb_base (the interpreter cannot run there: $pb_why)" ;;
		esac
	done
	if [ -z "$pb_ready" ]; then
		pb_die 9 "no usable temporary directory for the bootstrap interpreter: ${pb_tried:-none}; set TMPDIR to a writable directory that allows execution"
	fi
	if [ -n "${LD_LIBRARY_PATH+x}" ]; then pb_ldset=set; else pb_ldset=unset; fi
	pb_ldlp=${LD_LIBRARY_PATH-}
	set -f
	LD_LIBRARY_PATH=$pb_root/lib "$pb_py" -I -B -c "$pb_launcher" "$pb_file" "$pb_tmp" "$pb_ldlp" "$pb_ldset" "$pb_cmd" $pb_wheels -- "$@"
	pb_status=$?
	set +f
	pb_cleanup
	return $pb_status
}

pb_main "$@"
exit $?
