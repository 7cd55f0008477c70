defmodule HordeC.Test.RegistryHelpers do
  @moduledoc """
  Code the `HordeC.Registry` tests run on peer nodes (through `peer_call/5`): functions in
  `*_test.exs` files are not loaded there.

  * `start_registry/1` starts a registry whose process outlives the `:erpc` call that started it.
  * A *holder* is a long-lived process that runs `{m, f, a}` on request (so it can register
    itself, look up, unregister...) and reports every exit signal it receives to its owner
    (it traps exits when asked), so a test can count the `:name_conflict` signals a loser gets.
  """

  @doc """
  Starts `HordeC.Registry.start_link(opts)` in a process that stays alive after the caller
  returns (a start_link from an `:erpc` call would die with it). Returns what start_link returned.
  """
  @spec start_registry(keyword()) :: GenServer.on_start()
  def start_registry(opts),
    do: HordeC.Test.PeerHelpers.start_held(fn -> HordeC.Registry.start_link(opts) end)

  @doc "Stops the registry process `name` on this node (its tables go with it)."
  @spec stop_registry(atom()) :: :ok
  def stop_registry(name) do
    case Process.whereis(name) do
      nil -> :ok
      pid -> GenServer.stop(pid)
    end
  end

  @doc """
  Spawns a holder owned by `owner` (a pid, usually the test process). With `trap: true` it traps
  exits: each exit signal it receives is sent to `owner` as `{:holder_exit, holder, from, reason}`
  and the holder lives on; otherwise exit signals kill it as usual.
  """
  @spec holder(pid(), keyword()) :: pid()
  def holder(owner, opts \\ []) do
    spawn(fn ->
      if Keyword.get(opts, :trap, false), do: Process.flag(:trap_exit, true)
      holder_loop(owner)
    end)
  end

  defp holder_loop(owner) do
    receive do
      {:run, from, ref, {m, f, a}} ->
        result =
          try do
            {:ok, apply(m, f, a)}
          catch
            kind, reason -> {kind, reason}
          end

        send(from, {ref, result})
        holder_loop(owner)

      {:stop, reason} ->
        exit(reason)

      {:EXIT, from, reason} ->
        send(owner, {:holder_exit, self(), from, reason})
        holder_loop(owner)

      other ->
        send(owner, {:holder_msg, self(), other})
        holder_loop(owner)
    end
  end

  @doc """
  Runs `apply(m, f, a)` in `holder` and returns its result (an exception in the holder is
  re-raised here as an exit, so a test fails with it).
  """
  @spec run(pid(), module(), atom(), list(), timeout()) :: term()
  def run(holder, m, f, a, timeout \\ 15_000) do
    ref = Process.monitor(holder)
    send(holder, {:run, self(), ref, {m, f, a}})

    receive do
      {^ref, {:ok, result}} ->
        Process.demonitor(ref, [:flush])
        result

      {^ref, other} ->
        Process.demonitor(ref, [:flush])
        exit({:holder_failed, other})

      {:DOWN, ^ref, :process, _, reason} ->
        exit({:holder_down, reason})
    after
      timeout -> exit({:holder_timeout, {m, f, a}})
    end
  end

  @doc """
  `n` processes (spawned here, kept alive until `release/1`) register `key` at the same moment.
  Returns `{pids, results}` with `results` in the order of `pids`.
  """
  @spec race(atom(), term(), pos_integer()) :: {[pid()], [term()]}
  def race(registry, key, n) do
    me = self()

    pids =
      for i <- 1..n do
        spawn(fn ->
          receive do
            :go -> :ok
          end

          send(me, {:raced, self(), HordeC.Registry.register(registry, key, i)})

          receive do
            :release -> :ok
          end
        end)
      end

    Enum.each(pids, &send(&1, :go))
    results = for pid <- pids, do: receive(do: ({:raced, ^pid, r} -> r))
    {pids, results}
  end

  @doc """
  `n` processes (spawned here, kept alive until `release/1`), each registering `{prefix, i}` with
  value `i`, all at once. Returns their pids once every registration returned `{:ok, _}`.
  """
  @spec register_many(atom(), term(), pos_integer()) :: [pid()]
  def register_many(registry, prefix, n) do
    me = self()

    pids =
      for i <- 1..n do
        spawn(fn ->
          {:ok, _} = HordeC.Registry.register(registry, {prefix, i}, i)
          send(me, {:registered, self()})

          receive do
            :release -> :ok
          end
        end)
      end

    for pid <- pids, do: receive(do: ({:registered, ^pid} -> :ok))
    pids
  end

  @doc "Registers every key of `keys` for the calling process, in order; `:ok` when all returned `{:ok, _}`."
  @spec register_keys(atom(), [term()]) :: :ok
  def register_keys(registry, keys) do
    Enum.each(keys, fn k -> {:ok, _} = HordeC.Registry.register(registry, k, k) end)
  end

  @doc "Unregisters every key of `keys` for the calling process, one call each."
  @spec unregister_keys(atom(), [term()]) :: :ok
  def unregister_keys(registry, keys),
    do: Enum.each(keys, fn k -> :ok = HordeC.Registry.unregister(registry, k) end)

  @doc "Ends processes started by `race/3` (or any that wait for `:release`)."
  @spec release([pid()]) :: :ok
  def release(pids), do: Enum.each(pids, &send(&1, :release))

  @doc """
  Read-your-writes under load, run on one node: `n` processes each do `rounds` of
  register → lookup → update → lookup → unregister → lookup, checking every read against the
  write that preceded it. Returns the list of violations (empty when all reads were right).
  """
  @spec read_your_writes(atom(), pos_integer(), pos_integer()) :: [term()]
  def read_your_writes(registry, n, rounds) do
    alias HordeC.Registry, as: R

    1..n
    |> Enum.map(fn i ->
      Task.async(fn ->
        me = self()

        Enum.flat_map(1..rounds, fn r ->
          key = {:ryw, i, r}
          {:ok, _} = R.register(registry, key, r)
          a = R.lookup(registry, key)
          {^r, ^r} = {r, r}
          {_, _} = R.update_value(registry, key, &(&1 + 1))
          b = R.lookup(registry, key)
          :ok = R.unregister(registry, key)
          c = R.lookup(registry, key)
          d = R.keys(registry, me)

          [
            {a == [{me, r}], {:after_register, key, a}},
            {b == [{me, r + 1}], {:after_update, key, b}},
            {c == [], {:after_unregister, key, c}},
            {key not in d, {:keys_after_unregister, key, d}}
          ]
          |> Enum.reject(&elem(&1, 0))
          |> Enum.map(&elem(&1, 1))
        end)
      end)
    end)
    |> Task.await_many(60_000)
    |> List.flatten()
  end
end
