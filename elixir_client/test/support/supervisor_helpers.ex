defmodule HordeC.Test.SupervisorHelpers do
  @moduledoc """
  Code the `HordeC.DynamicSupervisor` tests run on peer nodes (through `peer_call/5`), and the
  child modules they supervise: children run on any BEAM member, so their modules must be
  loadable everywhere (`test/support` is compiled to ebin; `*_test.exs` modules are not).
  """

  @doc """
  Starts `HordeC.DynamicSupervisor.start_link(opts)` in a process that outlives the caller (a
  start_link from an `:erpc` call would die with it). Returns what start_link returned.
  """
  @spec start_sup(keyword()) :: term()
  def start_sup(opts) do
    caller = self()
    ref = make_ref()

    spawn(fn ->
      Process.flag(:trap_exit, true)
      result = HordeC.DynamicSupervisor.start_link(opts)
      send(caller, {ref, result})
      if match?({:ok, _}, result), do: hold()
    end)

    receive do
      {^ref, result} -> result
    after
      30_000 -> {:error, :start_timeout}
    end
  end

  # The holder lives until the supervisor ends (its exit arrives as a message: we trap exits).
  defp hold do
    receive do
      {:EXIT, _, _} -> :ok
    end
  end

  @doc """
  Starts the supervisor under the `:horde_c` application's supervisor (so that `:init.stop()`
  shuts it down as an application's process, running its terminate).
  """
  @spec start_sup_under_app(keyword()) :: term()
  def start_sup_under_app(opts) do
    {:ok, _} = Application.ensure_all_started(:horde_c)
    Supervisor.start_child(HordeC.Supervisor, {HordeC.DynamicSupervisor, opts})
  end

  @doc "Stops the supervisor `name` on this node gracefully, if it runs."
  @spec stop_sup(atom()) :: :ok
  def stop_sup(name) do
    case Process.whereis(name) do
      nil -> :ok
      pid -> GenServer.stop(pid, :normal, 30_000)
    end
  catch
    :exit, _ -> :ok
  end

  @doc "`{pid, node}` of every running child (`which_children/1` on this node)."
  @spec child_pids(atom()) :: [pid()]
  def child_pids(sup) do
    for {_, pid, _, _} <- HordeC.DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
  end

  @doc "Starts `n` children `fun.(i)` concurrently (in `tasks` tasks); returns the results in order."
  @spec start_many(atom(), pos_integer(), (pos_integer() -> term()), pos_integer()) :: [term()]
  def start_many(sup, n, fun, tasks \\ 8) do
    1..n
    |> Enum.chunk_every(max(div(n + tasks - 1, tasks), 1))
    |> Enum.map(fn chunk ->
      Task.async(fn ->
        for i <- chunk, do: HordeC.DynamicSupervisor.start_child(sup, fun.(i))
      end)
    end)
    |> Task.await_many(120_000)
    |> Enum.concat()
  end
end

defmodule HordeC.Test.SupWorker do
  @moduledoc """
  A test child: a GenServer identified by `key` (its init sleeps `init_ms`), telling `listener`
  (if any) when it starts and when it terminates:

    * `{:started, key, pid, node, os_time_us}` from init;
    * `{:terminated, key, pid, node, reason, os_time_us}` at the end of terminate/2, which runs
      only when it traps exits (`trap: true`), after sleeping `terminate_ms`.

  Calls: `:key`, `:node`, `:extra`, `{:stop, reason}` (exits with `reason`), `:crash` (raises).
  """
  use GenServer

  def start_link(arg) when is_map(arg), do: GenServer.start_link(__MODULE__, arg)

  @doc "With `extra_arguments: [extra]`: the extra argument is kept in the state (call `:extra`)."
  def start_link(extra, arg) when is_map(arg),
    do: GenServer.start_link(__MODULE__, Map.put(arg, :extra, extra))

  @impl true
  def init(arg) do
    if Map.get(arg, :trap, false), do: Process.flag(:trap_exit, true)
    Process.sleep(Map.get(arg, :init_ms, 0))
    tell(arg, {:started, arg[:key], self(), node(), now()})
    {:ok, arg}
  end

  @impl true
  def handle_call(:key, _from, arg), do: {:reply, arg[:key], arg}
  def handle_call(:node, _from, arg), do: {:reply, node(), arg}
  def handle_call(:extra, _from, arg), do: {:reply, arg[:extra], arg}
  def handle_call({:stop, reason}, _from, arg), do: {:stop, reason, :ok, arg}
  def handle_call(:crash, _from, _arg), do: raise("crash requested")

  @impl true
  def handle_info(_msg, arg), do: {:noreply, arg}

  @impl true
  def terminate(reason, arg) do
    Process.sleep(Map.get(arg, :terminate_ms, 0))
    tell(arg, {:terminated, arg[:key], self(), node(), reason, now()})
  end

  defp tell(%{listener: l}, msg) when is_pid(l), do: send(l, msg)
  defp tell(_, _), do: :ok

  defp now, do: System.os_time(:microsecond)
end

defmodule HordeC.Test.SupTask do
  @moduledoc """
  A test child that runs once and exits with `reason` after `ms` milliseconds (like Horde's
  tests' Tasks), telling `listener` `{:ran, key, pid, node}` when it starts.
  """
  def child_spec(arg) do
    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [arg]},
      restart: Map.get(arg, :restart, :temporary)
    }
  end

  def start_link(arg) do
    pid =
      spawn_link(fn ->
        if l = arg[:listener], do: send(l, {:ran, arg[:key], self(), node()})
        Process.sleep(Map.get(arg, :ms, 0))
        exit(Map.get(arg, :reason, :normal))
      end)

    {:ok, pid}
  end
end

defmodule HordeC.Test.SupIgnore do
  @moduledoc "A test child whose start returns `:ignore`, or `{:error, reason}` with `{:error, reason}`."
  def child_spec(arg), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}}
  def start_link({:error, reason}), do: {:error, reason}
  def start_link(_), do: :ignore
end
