defmodule HordeC.TelemetryTest do
  # The :telemetry call sites, observed through a small recording :telemetry module of the test's
  # own (the package is not installable here). The module exists only while this file's tests run
  # (async: false, so no other test sees it), which also shows the client emits nothing without it.
  use HordeC.InteropCase, async: false

  import ExUnit.CaptureLog

  @recorder :horde_c_telemetry_recorder

  setup do
    refute :erlang.function_exported(:telemetry, :execute, 3)
    # Without :telemetry every call site is a no-op that still returns the wrapped result.
    assert HordeC.Telemetry.execute([:horde_c, :x], %{}, %{}) == :ok
    assert HordeC.Telemetry.span([:horde_c, :x], %{}, fn -> {:result, %{}} end) == :result

    Code.compile_string("""
    defmodule :telemetry do
      def execute(event, measurements, metadata) do
        case Process.whereis(#{inspect(@recorder)}) do
          nil -> :ok
          pid -> send(pid, {:telemetry, event, measurements, metadata})
        end

        :ok
      end
    end
    """)

    Process.register(self(), @recorder)

    on_exit(fn ->
      :code.purge(:telemetry)
      :code.delete(:telemetry)
      :code.purge(:telemetry)
    end)

    :ok
  end

  defp unique_atom(prefix), do: :"#{prefix}_#{System.unique_integer([:positive])}"

  test "spans: start, stop with a result, exception" do
    assert HordeC.Telemetry.span([:horde_c, :t], %{a: 1}, fn -> {42, %{result: :ok}} end) == 42

    assert_received {:telemetry, [:horde_c, :t, :start], %{system_time: _, monotonic_time: _},
                     %{a: 1}}

    assert_received {:telemetry, [:horde_c, :t, :stop], %{duration: d}, %{a: 1, result: :ok}}
                    when is_integer(d) and d >= 0

    assert_raise RuntimeError, fn ->
      HordeC.Telemetry.span([:horde_c, :t], %{}, fn -> raise "boom" end)
    end

    assert_received {:telemetry, [:horde_c, :t, :exception], %{duration: _},
                     %{kind: :error, reason: %RuntimeError{}, stacktrace: [_ | _]}}
  end

  test "daemon start and exit, attach and failover, registry, map and supervisor writes" do
    start_supervised!(HordeC.Daemon)
    %{node: hordec, os_pid: os_pid} = HordeC.Daemon.status()

    assert_received {:telemetry, [:horde_c, :daemon, :start], %{duration: _, system_time: _},
                     %{node: ^hordec, os_pid: ^os_pid, executable: _}}

    reg = unique_atom(:tel_reg)
    start_supervised!({HordeC.Registry, name: reg, keys: :unique, hordec: :local})

    assert_received {:telemetry, [:horde_c, :attachment, :attached], _,
                     %{name: ^reg, kind: :registry, hordec: ^hordec, reason: :initial}}

    assert {:ok, _} = HordeC.Registry.register(reg, "k", 1)

    assert_received {:telemetry, [:horde_c, :registry, :register, :start], _,
                     %{registry: ^reg, key: "k"}}

    assert_received {:telemetry, [:horde_c, :registry, :register, :stop], %{duration: _},
                     %{registry: ^reg, key: "k", result: :ok}}

    assert {:error, {:already_registered, _}} = HordeC.Registry.register(reg, "k", 1)

    assert_received {:telemetry, [:horde_c, :registry, :register, :stop], _,
                     %{result: :already_registered}}

    assert :ok = HordeC.Registry.unregister(reg, "k")
    assert_received {:telemetry, [:horde_c, :registry, :unregister, :stop], _, %{registry: ^reg}}

    crdt = unique_atom(:tel_crdt)
    start_supervised!({HordeC.Crdt, name: crdt, hordec: :local})
    HordeC.Crdt.put(crdt, :a, 1)
    assert_received {:telemetry, [:horde_c, :crdt, :mutate, :stop], _, %{crdt: ^crdt, op: :put}}

    sup = unique_atom(:tel_sup)

    start_supervised!(
      {HordeC.DynamicSupervisor, name: sup, strategy: :one_for_one, hordec: :local}
    )

    assert {:ok, _} = HordeC.DynamicSupervisor.start_child(sup, {Agent, fn -> 0 end})

    assert_received {:telemetry, [:horde_c, :dynamic_supervisor, :start_child, :stop], _,
                     %{supervisor: ^sup, result: :ok}}

    # hordec killed: the daemon reports its exit and starts a new one; the registry fails over
    # (to the same node name, back under the new process).
    capture_log(fn ->
      signal(os_pid, "KILL")

      assert_receive {:telemetry, [:horde_c, :daemon, :exit], _,
                      %{node: ^hordec, os_pid: ^os_pid, status: 137}},
                     5_000

      assert_receive {:telemetry, [:horde_c, :attachment, :detached], _,
                      %{name: ^reg, hordec: ^hordec}},
                     5_000

      assert_receive {:telemetry, [:horde_c, :daemon, :start], _, %{node: ^hordec}}, 10_000

      assert_receive {:telemetry, [:horde_c, :attachment, :attached], _,
                      %{name: ^reg, hordec: ^hordec, reason: :failover}},
                     10_000
    end)
  end

  test "the daemon reports each daemon it discovers" do
    start_supervised!(HordeC.Daemon)
    me = HordeC.Daemon.local_node()
    p = start_peer()
    # The peer's daemon says hello to ours as soon as it starts (this node is connected to it).
    {:ok, _} = peer_call(p, HordeC.Test.DaemonHelpers, :start_tree, [[HordeC.Daemon]])
    peer_hordec = peer_call(p, HordeC.Daemon, :local_node, [])
    peer_node = p.node

    assert_receive {:telemetry, [:horde_c, :daemon, :peer_discovered], %{system_time: _},
                    %{node: ^me, peer: ^peer_hordec, beam_node: ^peer_node}},
                   10_000
  end
end
