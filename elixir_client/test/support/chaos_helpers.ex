defmodule HordeC.Test.ChaosHelpers do
  @moduledoc """
  Code the chaos run (`test/chaos/chaos_run.exs`) runs on its BEAM peers through `peer_call/5`: a
  `HordeC.Crdt` client that outlives the `:erpc` call that started it, and writes through it that
  report their outcome instead of raising. Only the chaos run uses this module.
  """

  @doc """
  Starts (or restarts) the `HordeC.Crdt` client `name` attached to replica `replica` on `hordec`,
  in a process that lives as long as the client does (the client exits when its hordec goes down,
  and takes that process along). A client still registered under `name` is killed first. Returns
  what `start_link/1` returned.
  """
  @spec start_crdt(atom(), node(), atom()) :: term()
  def start_crdt(name, hordec, replica) do
    {:ok, _} = Application.ensure_all_started(:horde_c)

    case Process.whereis(name) do
      nil ->
        :ok

      pid ->
        ref = Process.monitor(pid)
        Process.exit(pid, :kill)
        receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
    end

    HordeC.Test.PeerHelpers.start_held(
      fn -> HordeC.Crdt.start_link(name: name, hordec: hordec, replica: replica) end,
      15_000
    )
  end

  @doc """
  `HordeC.Crdt.put/4` (`value` not `:absent`) or `delete/3` (`value` `:absent`) through the local client
  `name`: `:ok` when the replica acknowledged it, `:failed` when the call exited (it may or may not
  have been applied).
  """
  @spec write(atom(), term(), term(), timeout()) :: :ok | :failed
  def write(name, key, value, timeout) do
    case value do
      :absent -> HordeC.Crdt.delete(name, key, timeout)
      _ -> HordeC.Crdt.put(name, key, value, timeout)
    end

    :ok
  catch
    :exit, _ -> :failed
  end
end
