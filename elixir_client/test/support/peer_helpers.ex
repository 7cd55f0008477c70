defmodule HordeC.Test.PeerHelpers do
  @moduledoc """
  Code that tests run *on peer nodes* (through `HordeC.TestCluster.peer_call/5`). It lives
  in `test/support` because peers load modules from the runner's ebin; functions defined
  in `*_test.exs` files are not available there.
  """

  @doc """
  Starts one Task per term in `terms`, all at once, each doing
  `GenServer.call({:hordec, c_node}, {:echo, term})`. Returns `[{term, reply_or_exit}]`
  in the order of `terms`.
  """
  @spec concurrent_echo(node(), [term()], timeout()) :: [{term(), term()}]
  def concurrent_echo(c_node, terms, timeout \\ 10_000) do
    parent = self()

    terms
    |> Enum.map(fn term ->
      Task.async(fn ->
        # Line up all callers so the calls really overlap.
        send(parent, {:ready, self()})

        receive do
          :go -> :ok
        end

        reply =
          try do
            GenServer.call({:hordec, c_node}, {:echo, term}, timeout)
          catch
            :exit, reason -> {:exit, reason}
          end

        {term, reply}
      end)
    end)
    |> tap(fn tasks ->
      for %Task{pid: pid} <- tasks, do: receive(do: ({:ready, ^pid} -> :ok))
      for %Task{pid: pid} <- tasks, do: send(pid, :go)
    end)
    |> Task.await_many(timeout + 5_000)
  end

  @doc """
  Spawns an unlinked process that waits for `{:exit, reason}` and then exits with
  `reason`. Returns its pid.
  """
  @spec spawn_waiter() :: pid()
  def spawn_waiter do
    spawn(fn ->
      receive do
        {:exit, reason} -> exit(reason)
      end
    end)
  end

  @doc """
  Runs `start` (a `start_link`) in a fresh process that stays alive as long as what it started, so that
  something started through a peer's `:erpc` call outlives the call (a linked start dies with its caller, and
  `:erpc` runs each call in a process of its own). Returns what `start` returned, or `{:error, :start_timeout}`.
  """
  @spec start_held((() -> term()), timeout()) :: term()
  def start_held(start, timeout \\ 30_000) do
    caller = self()
    ref = make_ref()

    spawn(fn ->
      result = start.()
      send(caller, {ref, result})
      if match?({:ok, _}, result), do: Process.sleep(:infinity)
    end)

    receive do
      {^ref, result} -> result
    after
      timeout -> {:error, :start_timeout}
    end
  end

  @doc """
  Calls `mod.start_link(opts)` from a fresh process that traps exits (so a start that fails does
  not take the caller down) and returns its result. The started process, if any, stays linked to
  that helper process, which lives as long as it does.
  """
  @spec start_link_trapping(module(), keyword()) :: term()
  def start_link_trapping(mod, opts) do
    parent = self()
    ref = make_ref()

    spawn(fn ->
      Process.flag(:trap_exit, true)
      send(parent, {ref, mod.start_link(opts)})

      receive do
        {:EXIT, _from, _reason} -> :ok
      end
    end)

    receive do
      {^ref, result} -> result
    after
      15_000 -> exit(:start_link_timeout)
    end
  end

  @doc "Like `spawn_waiter/0`, but the process traps exits and forwards every message to `to`."
  @spec spawn_trapping_forwarder(pid()) :: pid()
  def spawn_trapping_forwarder(to) do
    spawn(fn ->
      Process.flag(:trap_exit, true)
      forward(to)
    end)
  end

  defp forward(to) do
    receive do
      {:exit, reason} ->
        exit(reason)

      msg ->
        send(to, {:forwarded, self(), msg})
        forward(to)
    end
  end
end

defmodule HordeC.Test.EchoServer do
  @moduledoc """
  A trivial GenServer (the BEAM side of C→BEAM calls): `{:echo, t}` replies `t`,
  `:count` replies the number of plain messages received so far.
  """
  use GenServer

  @doc "Starts the server unlinked, registered as `name` (so it outlives an `:erpc` call)."
  @spec start(atom()) :: GenServer.on_start()
  def start(name), do: GenServer.start(__MODULE__, 0, name: name)

  @impl true
  def init(count), do: {:ok, count}

  @impl true
  def handle_call({:echo, term}, _from, count), do: {:reply, term, count}
  def handle_call(:count, _from, count), do: {:reply, count, count}
  def handle_call(:never_reply, _from, count), do: {:noreply, count}

  @impl true
  def handle_info(_msg, count), do: {:noreply, count + 1}
end
