# Builds and runs tests/consumer against gradcomp, as a downstream user would.
# Usage: cmake -DMODE=install_prefix|build_tree -DGRADCOMP_BUILD_DIR=<dir>
#              -DCONSUMER_SOURCE_DIR=<dir> -DWORK_DIR=<dir> [-DCONFIG=<cfg>]
#              [-DCXX_COMPILER=<path>] [-DGENERATOR=<name>] [-DMAKE_PROGRAM=<path>]
#              [-DEXPECTED_VERSION=x.y.z] [-DREQUIRE_TBB=ON] [-DREQUIRE_MPI=ON] -P run-consumer.cmake
cmake_minimum_required(VERSION 3.25)

foreach(_var MODE GRADCOMP_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run-consumer.cmake: -D${_var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(install_prefix|build_tree)$")
  message(FATAL_ERROR "run-consumer.cmake: unknown MODE '${MODE}'")
endif()

# Runs one step; on failure stops with the step's name and its full output.
function(run_step name)
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE _rc
                  OUTPUT_VARIABLE _out
                  ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    string(REPLACE ";" " " _cmd "${ARGN}")
    # NOTICE prints the tool's output verbatim; FATAL_ERROR would reflow it.
    message(NOTICE "${_out}")
    message(FATAL_ERROR "consumer.${MODE}: step '${name}' failed (exit ${_rc}): ${_cmd}")
  endif()
  message(STATUS "consumer.${MODE}: ${name}: ok")
  set(step_output "${_out}" PARENT_SCOPE)
endfunction()

# Fresh every run, so no stale cache or install can make it pass.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_build "${WORK_DIR}/build")

set(_cfg_args)
if(CONFIG)
  set(_cfg_args --config "${CONFIG}")
endif()

set(_configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${_build}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(GENERATOR)
  list(APPEND _configure_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
  list(APPEND _configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND _configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(CONFIG)
  list(APPEND _configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()

if(MODE STREQUAL "install_prefix")
  set(_prefix "${WORK_DIR}/prefix")
  run_step("install" "${CMAKE_COMMAND}" --install "${GRADCOMP_BUILD_DIR}"
           --prefix "${_prefix}" ${_cfg_args})
  foreach(_f include/gradcomp/gradcomp.hpp include/gradcomp/version.hpp)
    if(NOT EXISTS "${_prefix}/${_f}")
      message(FATAL_ERROR "consumer.${MODE}: '${_f}' missing from the install prefix")
    endif()
  endforeach()
  list(APPEND _configure_args "-DCMAKE_PREFIX_PATH=${_prefix}")
  set(_expected_dir "${_prefix}")
else()
  list(APPEND _configure_args "-Dgradcomp_DIR=${GRADCOMP_BUILD_DIR}")
  set(_expected_dir "${GRADCOMP_BUILD_DIR}")
endif()

if(REQUIRE_TBB)
  list(APPEND _configure_args -DREQUIRE_TBB=ON)
endif()
if(REQUIRE_CUDA)
  list(APPEND _configure_args -DREQUIRE_CUDA=ON "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}" -DCMAKE_CUDA_ARCHITECTURES=90)
endif()
if(REQUIRE_MPI)
  list(APPEND _configure_args -DREQUIRE_MPI=ON)
endif()
run_step("configure" "${CMAKE_COMMAND}" ${_configure_args})

# Guard against silently picking up some other gradcomp (e.g. one in /usr/local).
file(STRINGS "${_build}/CMakeCache.txt" _found REGEX "^gradcomp_DIR:")
string(REGEX REPLACE "^gradcomp_DIR:[A-Z]+=" "" _found "${_found}")
cmake_path(IS_PREFIX _expected_dir "${_found}" NORMALIZE _ok)
if(NOT _ok)
  message(FATAL_ERROR "consumer.${MODE}: found gradcomp in '${_found}', "
                      "expected it under '${_expected_dir}'")
endif()

run_step("build" "${CMAKE_COMMAND}" --build "${_build}" ${_cfg_args})

# Multi-config generators put the binary in a per-config subdirectory.
set(_exe "${_build}/consumer")
if(NOT EXISTS "${_exe}" AND CONFIG)
  set(_exe "${_build}/${CONFIG}/consumer")
endif()
if(REQUIRE_CUDA)
  # Built (the point: the package's cuda component compiles a .cu file); run where a GPU is.
  run_step("run consumer_cuda" "${_build}/consumer_cuda")
endif()
run_step("run" "${_exe}")
message(STATUS "consumer.${MODE}: ${step_output}")
if(REQUIRE_MPI AND NOT step_output MATCHES "mpi: yes")
  message(FATAL_ERROR "consumer.${MODE}: gradcomp::mpi was required but the consumer was built without it")
endif()
if(REQUIRE_TBB AND step_output MATCHES "exec::par: seq")
  message(FATAL_ERROR "consumer.${MODE}: gradcomp::tbb was required but the consumer ran without exec::par")
endif()
string(FIND "${step_output}" "gradcomp ${EXPECTED_VERSION}:" _pos)
if(EXPECTED_VERSION AND _pos EQUAL -1)
  message(FATAL_ERROR "consumer.${MODE}: expected 'gradcomp ${EXPECTED_VERSION}:' "
                      "in the output, got: ${step_output}")
endif()
