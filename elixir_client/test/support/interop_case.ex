defmodule HordeC.InteropCase do
  @moduledoc """
  `ExUnit.CaseTemplate` for interop tests: imports `HordeC.TestCluster` (start hordec and
  peers, `ctl/3`, `eventually/3`, `assert_log/3`...) and aliases the harness modules.
  Skips every test with a clear message when the hordec binary is missing.

      defmodule MyTest do
        use HordeC.InteropCase, async: true

        test "ping" do
          h = start_hordec()
          assert ctl(h, :ping) == :pong
        end
      end
  """
  use ExUnit.CaseTemplate

  using do
    quote do
      import HordeC.TestCluster
      alias HordeC.TestCluster
      alias HordeC.TestCluster.{Hordec, Peer}
      alias HordeC.Test.{EchoServer, PeerHelpers, RawDist}
    end
  end
end
