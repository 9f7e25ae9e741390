# require_free_space DIR GIB WHAT (sourced, not run): stop before an install that the disk holding DIR cannot take.
# Without it pip fails minutes in with "OSError: [Errno 28] No space left on device" and a half-filled environment.
# GEO_R_SKIP_SPACE_CHECK=1 skips the check; when df cannot answer, the install goes ahead.
require_free_space() {
  local dir="$1" need_gib="$2" what="$3" free_kib
  [[ "${GEO_R_SKIP_SPACE_CHECK:-0}" == 1 ]] && return 0
  free_kib="$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')"
  [[ "$free_kib" =~ ^[0-9]+$ ]] || return 0
  if (( free_kib < need_gib * 1024 * 1024 )); then
    echo "$what needs about $need_gib GiB free on the disk that holds $dir, and it has $((free_kib / 1024 / 1024)) GiB" \
      "($((free_kib / 1024)) MiB) free. Free some space and run it again (GEO_R_SKIP_SPACE_CHECK=1 tries anyway)." >&2
    return 1
  fi
}
