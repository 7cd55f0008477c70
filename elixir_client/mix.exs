defmodule HordeC.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :horde_c,
      version: @version,
      elixir: "~> 1.14",
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      # No dependencies on purpose: the build machines have no network (no hex.pm).
      # Everything here must come from Elixir/OTP itself.
      deps: [],
      test_coverage: [ignore_modules: [~r/^HordeC\.Test/]],
      docs: [main: "HordeC"]
    ]
  end

  def application do
    [mod: {HordeC.Application, []}, extra_applications: extra_applications(Mix.env())]
  end

  # The raw distribution client in test/support computes MD5 handshake digests.
  defp extra_applications(:test), do: [:logger, :crypto]
  defp extra_applications(_), do: [:logger]

  # test/support holds the interop harness (real hordec OS processes, :peer nodes, a raw
  # distribution client). It is compiled to ebin only in :test, so peers started by the
  # harness can load those modules from the runner's code path.
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
