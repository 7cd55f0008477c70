defmodule HordeC.Test.TlsHelpers do
  @moduledoc """
  Code that `tls_test.exs` runs on TLS peers (peers load modules from the runner's ebin, not
  from test files): the checks a BEAM node makes of a hordec node over TLS.
  """

  @doc """
  A call to a name that does not exist on `c_node`: `{exit_reason_tag, microseconds}`. hordec
  answers the caller's monitor at once, so this is `:noproc` in well under a second.
  """
  @spec noproc_call(node()) :: {term(), non_neg_integer()}
  def noproc_call(c_node) do
    t0 = System.monotonic_time(:microsecond)

    tag =
      try do
        GenServer.call({:no_such_name, c_node}, :hello, 5_000)
      catch
        :exit, {reason, _} -> reason
      end

    {tag, System.monotonic_time(:microsecond) - t0}
  end

  @doc """
  Monitors a C process of `c_node` (a `:spawn_worker`), makes it exit with `reason`, and returns
  the reason the DOWN message carries (or `:no_down`).
  """
  @spec monitor_c_process(node(), term()) :: term()
  def monitor_c_process(c_node, reason) do
    {:ok, pid} = GenServer.call({:hordec, c_node}, :spawn_worker)
    ref = Process.monitor(pid)
    send(pid, {:exit, reason})

    receive do
      {:DOWN, ^ref, :process, ^pid, why} -> why
    after
      5_000 -> :no_down
    end
  end

  @doc """
  Asks `c_node` to watch a BEAM process of this node (a C process monitors it), kills that
  process and returns the reason hordec reports in `{:hordec_down, ...}` (or `:no_down`).
  """
  @spec c_watches_beam(node()) :: term()
  def c_watches_beam(c_node) do
    victim = HordeC.Test.PeerHelpers.spawn_waiter()
    {:ok, ref} = GenServer.call({:hordec, c_node}, {:watch, victim})
    send(victim, {:exit, :gone})

    receive do
      {:hordec_down, ^ref, ^victim, why} -> why
    after
      5_000 -> :no_down
    end
  end
end
