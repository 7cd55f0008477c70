defmodule Mix.Tasks.HordeC.Status do
  @shortdoc "Prints a HordeC cluster's nodes, replicas and sync state"
  @moduledoc """
  Prints the hordec nodes of a cluster, the replicas they host (registries, supervisors, maps)
  and their sync state, as tables.

      mix horde_c.status NODE... [--replica NAME]... [--cookie COOKIE] [--timeout MS] [--no-follow]

  `NODE` is any node of the cluster: a hordec node (`hordec_app@10.0.0.1`) or a BEAM node running
  `:horde_c` (`app@10.0.0.1`: its registries, supervisors and maps are found by name). The
  peers of every hordec node found are followed, so one node is enough.

  The task starts a hidden distributed node of its own (long or short names, as the first
  `NODE`) with the cookie of `--cookie`, else `$HORDEC_COOKIE`, else `~/.erlang.cookie`.

  Options:

    * `--replica NAME` – also look for the replica `NAME` (an atom such as `MyApp.Registry`;
      repeatable) on every hordec node;
    * `--cookie COOKIE` – the distribution cookie;
    * `--timeout MS` – per request (default 5000);
    * `--no-follow` – read only the nodes given.

  Columns: for nodes, the `:info` reply (uptime, peers, RSS, processes, messages in/out); for
  replicas, the `:stats` reply — size (registry entries, supervisor children, map keys),
  members (or neighbours), subscribed clients, sync messages out/in, messages rejected, and
  `in sync` when the replica has nothing left to ship (`syncing` otherwise).
  """
  use Mix.Task

  @switches [replica: :keep, cookie: :string, timeout: :integer, follow: :boolean]

  @impl true
  def run(argv) do
    {opts, nodes, invalid} = OptionParser.parse(argv, strict: @switches)

    if invalid != [] or nodes == [] do
      Mix.raise(
        "usage: mix horde_c.status NODE... [--replica NAME]... [--cookie C] [--timeout MS] [--no-follow]"
      )
    end

    nodes = Enum.map(nodes, &String.to_atom/1)
    start_distribution!(hd(nodes))

    case opts[:cookie] || System.get_env("HORDEC_COOKIE") do
      nil -> :ok
      cookie -> Node.set_cookie(String.to_atom(cookie))
    end

    {:ok, _} = Application.ensure_all_started(:horde_c)

    replicas =
      for {:replica, name} <- opts do
        # As written in code: MyApp.Registry is Elixir.MyApp.Registry, :my_reg is my_reg.
        cond do
          name =~ ~r/^[A-Z]/ -> Module.concat([name])
          String.starts_with?(name, ":") -> name |> String.trim_leading(":") |> String.to_atom()
          true -> String.to_atom(name)
        end
      end

    HordeC.Status.collect(nodes,
      replicas: replicas,
      timeout: Keyword.get(opts, :timeout, 5_000),
      follow: Keyword.get(opts, :follow, true)
    )
    |> HordeC.Status.format()
    |> Mix.shell().info()
  end

  defp start_distribution!(first) do
    unless Node.alive?() do
      host = first |> Atom.to_string() |> String.split("@") |> List.last()
      mode = if String.contains?(host, "."), do: :longnames, else: :shortnames
      name = :"horde_c_status_#{System.unique_integer([:positive])}@#{host}"
      # Hidden: looking must not change the cluster (no global name sync, not in Node.list/0).
      case :net_kernel.start(name, %{name_domain: mode, hidden: true}) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          Mix.raise(
            "horde_c.status: cannot start distribution as #{name} (is epmd running?): " <>
              inspect(reason)
          )
      end
    end
  end
end
