# ctest bench.smoke: runs gradcomp_bench on tiny inputs (GRADCOMP_BENCH_SMOKE=1) with JSON
# output, then the table script in --strict mode (every expected row present, no errors).
# cmake -DBENCH=... -DPYTHON=... -DTABLE_SCRIPT=... -DWORK_DIR=... -P smoke.cmake
foreach(_var BENCH PYTHON TABLE_SCRIPT WORK_DIR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "smoke.cmake: ${_var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_json "${WORK_DIR}/results.json")

execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env GRADCOMP_BENCH_SMOKE=1
          "${BENCH}" --benchmark_min_time=0.01 "--benchmark_out=${_json}" --benchmark_out_format=json
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "gradcomp_bench failed (exit ${_rc})")
endif()

execute_process(
  COMMAND "${PYTHON}" "${TABLE_SCRIPT}" "${_json}" --out "${WORK_DIR}/table.md" --strict
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "bench_table.py failed (exit ${_rc})")
endif()
message(STATUS "bench.smoke: table written to ${WORK_DIR}/table.md")
