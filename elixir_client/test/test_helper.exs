# Interop tests need a distributed runner: epmd, a longname node, a fixed cookie.
# See HordeC.TestCluster for the harness (real hordec OS processes + :peer nodes).
runner = HordeC.TestCluster.setup_runner!()

# Final sweep: whatever a crashed test or a failed on_exit left behind dies with the suite.
ExUnit.after_suite(fn _ -> HordeC.TestCluster.sweep(:mine) end)

unless HordeC.TestCluster.hordec_available?() do
  IO.puts(:stderr, """
  WARNING: hordec executable not found at #{HordeC.TestCluster.hordec_bin()}.
  Build it (cmake -S . -B build && cmake --build build -j2) or set HORDEC_BIN;
  interop tests will fail.
  """)
end

IO.puts("test runner: #{runner}, hordec: #{HordeC.TestCluster.hordec_bin()}")
ExUnit.start(capture_log: true)
